"""`[[devices]]` validation: errors name file, key path and reason; RTU builds a serial client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from adapters.modbus.bus import build_client
from adapters.modbus.service import make_services
from edge.cli import main as cli_main
from edge.config import ConfigError, parse_site


def site(*devices: dict[str, Any]) -> dict[str, Any]:
    return {"site": {"id": "s1"}, "devices": list(devices)}


def problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as e:
        parse_site(data, "site.toml")
    assert str(e.value).startswith("site.toml: ")
    return dict(e.value.problems)


def test_defaults_meet_the_one_second_budget() -> None:
    d = parse_site(site({"name": "battery", "kind": "sunspec", "port": 5020})).devices[0]
    assert d.timeout_s * (d.retries + 1) < d.offline_budget_s <= 1.0
    assert d.refresh_s == 10 and d.max_regs == 125


@pytest.mark.parametrize(
    ("device", "key", "reason"),
    [
        ({"name": "b", "kind": "sunspec", "bogus": 1}, "devices.0.bogus", "Unknown field"),
        ({"name": "b", "kind": "modbus"}, "devices.0.kind", "Must be one of"),
        ({"name": "B!", "kind": "sunspec"}, "devices.0.name", "must match"),
        ({"name": "controller", "kind": "sunspec"}, "devices.0.name", "reserved"),
        ({"name": "b", "kind": "pointmap"}, "devices.0.pointmap", "required"),
        ({"name": "b", "kind": "sunspec", "transport": "rtu"}, "devices.0.serial", "required"),
        (
            {"name": "b", "kind": "sunspec", "timeout_s": 0.6, "retries": 1},
            "devices.0.timeout_s",
            "offline_budget_s",
        ),
        (
            {"name": "b", "kind": "sunspec", "max_regs": 200},
            "devices.0.max_regs",
            "less than or equal to 125",
        ),
        (
            {"name": "b", "kind": "sunspec", "serial": {"port": "/dev/x"}},
            "devices.0.serial",
            "only for",
        ),
        (
            {"name": "b", "kind": "sunspec", "limits": {"704/WSet": [5, 1]}},
            "devices.0.limits",
            "min 5 > max 1",
        ),
        (
            {"name": "b", "kind": "sunspec", "limits": {"704/WSet": [1]}},
            "devices.0.limits.704/WSet.value",
            "Length must be 2",
        ),
        (
            {
                "name": "b",
                "kind": "sunspec",
                "poll_groups": [{"name": "c", "period_s": 0.1, "points": ["*"], "x": 1}],
            },
            "devices.0.poll_groups.0.x",
            "Unknown field",
        ),
    ],
)
def test_bad_device_tables_name_the_key(device: dict[str, Any], key: str, reason: str) -> None:
    got = problems(site(device))
    assert key in got, got
    assert reason in got[key]


def test_duplicate_device_names() -> None:
    got = problems(site({"name": "b", "kind": "sunspec"}, {"name": "b", "kind": "sunspec"}))
    assert "repeated: b" in got["devices"]


def test_rtu_builds_a_serial_client_on_the_same_code_path() -> None:
    d = parse_site(
        site(
            {
                "name": "b",
                "kind": "sunspec",
                "transport": "rtu",
                "serial": {"port": "/dev/ttyUSB0", "baudrate": 19200, "parity": "E", "stopbits": 1},
                "unit_id": 7,
            }
        )
    ).devices[0]

    async def build() -> Any:  # pymodbus clients need a running loop
        return build_client(d), build_client(
            parse_site(site({"name": "t", "kind": "sunspec", "port": 1502})).devices[0]
        )

    c, tcp = asyncio.run(build())
    assert isinstance(c, AsyncModbusSerialClient)
    p = c.comm_params
    assert (p.host, p.baudrate, p.parity, p.stopbits, p.bytesize) == (
        "/dev/ttyUSB0",
        19200,
        "E",
        1,
        8,
    )
    assert p.timeout_connect == d.timeout_s and p.reconnect_delay == 0
    assert isinstance(tcp, AsyncModbusTcpClient) and tcp.comm_params.port == 1502


def test_missing_pointmap_file_is_a_config_error(tmp_path: Path) -> None:
    cfg = parse_site(
        site({"name": "inv", "kind": "pointmap", "pointmap": "nope.csv"}),
        str(tmp_path / "site.toml"),
    )
    with pytest.raises(ConfigError) as e:
        make_services(cfg)
    assert e.value.problems[0][0] == "devices.0.pointmap"
    assert "cannot read" in e.value.problems[0][1]


def test_builtin_res125_and_relative_csv(tmp_path: Path) -> None:
    (tmp_path / "My-Map.csv").write_text("name,address,type\nA,1,uint16\n")
    cfg = parse_site(
        site(
            {"name": "inv", "kind": "pointmap", "pointmap": "res125"},
            {"name": "other", "kind": "pointmap", "pointmap": "My-Map.csv", "profile": "mymap"},
        ),
        str(tmp_path / "site.toml"),
    )
    svcs = make_services(cfg)
    assert [s.name for s in svcs] == ["adapter-inv", "adapter-other"]


def test_cli_check_config_exits_non_zero_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "site.toml"
    p.write_text('[site]\nid = "s"\n[[devices]]\nname = "battery"\nkind = "sunspec"\nprot = 502\n')
    assert cli_main(["check-config", "-c", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"{p}: devices.0.prot: Unknown field" in err


def test_refused_retry_keys_are_checked() -> None:
    got = problems(
        site(
            {"name": "b", "kind": "sunspec", "refused_retry_min_s": 100, "refused_retry_max_s": 10}
        )
    )
    assert "must not exceed refused_retry_max_s" in got["devices.0.refused_retry_min_s"]
    got = problems(site({"name": "b", "kind": "sunspec", "refused_retry_min_s": 0}))
    assert "refused_retry_min_s must be > 0" in got["devices.0.refused_retry_min_s"]
