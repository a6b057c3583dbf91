"""`[simulator]` validation: unknown keys and bad values are refused, naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapters.simulator.config import SimulatorConfig
from edge.config import ConfigError, parse_site


def site(sim: dict[str, Any]) -> dict[str, Any]:
    return {"site": {"id": "t"}, "simulator": sim}


def problems(sim: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as e:
        parse_site(site(sim))
    return e.value.problems


def test_good_config_loads_with_defaults() -> None:
    cfg = parse_site(
        site(
            {
                "time_scale": 60,
                "devices": [
                    {"name": "battery", "kind": "battery", "capacity_wh": 50_000},
                    {
                        "name": "inverter",
                        "kind": "inverter",
                        "profile": "res125",
                        "battery": "battery",
                    },
                    {"name": "meter", "kind": "meter", "load_profile": [[0, 100], [60, 200]]},
                ],
            }
        )
    )
    sim = cfg.simulator
    assert isinstance(sim, SimulatorConfig)
    assert sim.host == "127.0.0.1" and sim.time_scale == 60
    assert sim.device("battery").capacity_wh == 50_000
    assert sim.device("battery").port == 0
    assert sim.device("meter").load_profile == [(0.0, 100.0), (60.0, 200.0)]


@pytest.mark.parametrize(
    ("sim", "key", "reason"),
    [
        ({"tme_scale": 1}, "simulator.tme_scale", "Unknown field"),
        ({"time_scale": 0}, "simulator.time_scale", ""),
        (
            {"devices": [{"name": "b", "kind": "battry"}]},
            "simulator.devices.0.kind",
            "Must be one of",
        ),
        (
            {"devices": [{"name": "b", "kind": "battery", "colour": 1}]},
            "simulator.devices.0.colour",
            "Unknown",
        ),
        (
            {"devices": [{"name": "b", "kind": "battery", "initial_soc": 120}]},
            "simulator.devices.0.initial_soc",
            "",
        ),
        (
            {"devices": [{"name": "m", "kind": "meter", "capacity_wh": 5}]},
            "simulator.devices.0.capacity_wh",
            "not a meter option",
        ),
        (
            {"devices": [{"name": "i", "kind": "inverter", "profile": "sma"}]},
            "simulator.devices.0.profile",
            "sunspec, legacy, res125",
        ),
        ({"devices": [{"name": "B", "kind": "battery"}]}, "simulator.devices.0.name", "must match"),
        ({"devices": [{"name": "sim", "kind": "battery"}]}, "simulator.devices.0.name", "reserved"),
        (
            {"devices": [{"name": "m", "kind": "meter", "load_profile": [[0, 1, 2]]}]},
            "simulator.devices.0.load_profile.0",
            "[seconds, watts]",
        ),
        (
            {"devices": [{"name": "b", "kind": "battery", "port": 70000}]},
            "simulator.devices.0.port",
            "",
        ),
        (
            {"devices": [{"name": "b", "kind": "battery"}, {"name": "b", "kind": "meter"}]},
            "simulator.devices",
            "unique",
        ),
        (
            {"devices": [{"name": "i", "kind": "inverter", "battery": "nope"}]},
            "simulator.devices.0.battery",
            "no battery device named 'nope'",
        ),
    ],
)
def test_bad_config_names_the_key(sim: dict[str, Any], key: str, reason: str) -> None:
    found = problems(sim)
    assert any(k == key and reason in r for k, r in found), found


def test_cli_refuses_bad_simulator_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[site]\nid = "t"\n[simulator]\ntime_scale = -1\n[[simulator.devices]]\n'
        'name = "battery"\nkind = "battery"\nvoltage = "high"\n'
    )
    r = subprocess.run(
        [sys.executable, "-m", "edge.cli", "sim", "-c", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "simulator.time_scale" in r.stderr
    assert "simulator.devices.0.voltage" in r.stderr
