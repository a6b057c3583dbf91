"""The backtest on cases computed by hand, and its refusals of bad input.

The engine runs the controller's own mode and pipeline code over the simulator's physics;
these tests check its figures against arithmetic done here, not against its own output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.simulator.backtest_engine import Backtest, kpis
from adapters.simulator.config import SimulatorSchema
from adapters.simulator.series import Series, SeriesError, read_series
from edge.cli import main
from edge.controller.config import ControllerSettings
from edge.controller.modes.registry import load_mode

DAY = 86_400


def sim_cfg(**battery: Any) -> Any:
    bat = {"name": "battery", "kind": "battery", "capacity_wh": 20_000, "initial_soc": 60}
    return SimulatorSchema().load(
        {
            "devices": [
                {**bat, "taper_low_soc": 1, **battery},
                {"name": "inverter", "kind": "inverter", "rating_w": 100_000},
            ]
        }
    )


def flat(w: float) -> Series:
    return Series("flat", [0.0], [w], False)


def test_flat_load_above_target_is_shaved_until_the_soc_floor() -> None:
    """60 kW flat, target 50 kW, 20 kWh at 60 %, floor 10 %: the battery gives 10 kW for
    (60 - 10) % x 20 kWh / 10 kW = 3600 s; then the grid carries the whole load."""
    mode = load_mode("peak_shaving", {"target_w": 50_000})
    bt = Backtest(sim_cfg(), ControllerSettings(soc_low_limit=10), mode, flat(60_000))
    trace = bt.run(DAY)
    floor_t = 3600.0
    settle = 30  # the loop closes in a few steps (gain 0.5 on a 1 s meter)
    for t, grid in zip(trace.t, trace.grid, strict=True):
        if settle <= t <= floor_t - 10:
            assert grid == pytest.approx(50_000, abs=5), t
        elif t >= floor_t + 10:
            assert grid == pytest.approx(60_000, abs=1e-6), t
    k = kpis(trace, 20_000)
    assert k["peak_import_before_w"] == 60_000
    assert k["peak_import_after_w"] == 60_000  # once empty, the load comes back whole
    assert k["energy_discharged_wh"] == pytest.approx(10_000, rel=0.002)
    assert k["energy_charged_wh"] == 0
    assert k["equivalent_cycles"] == pytest.approx(10_000 / 2 / 20_000, rel=0.002)
    assert k["import_wh_before"] == pytest.approx(60_000 * 24, rel=1e-9)
    assert k["import_wh_after"] == pytest.approx(60_000 * 24 - 10_000, rel=1e-4)
    assert k["soc_min"] == pytest.approx(10, abs=0.05)
    assert k["soc_max"] == 60
    assert k["bound_s"]["soc_low"] == pytest.approx(DAY - floor_t, abs=15)
    assert k["bound_s"]["none"] == pytest.approx(floor_t, abs=15)
    assert k["self_consumption_after"] is None  # no PV


def test_pv_surplus_soaked_up_until_full_then_exported() -> None:
    """Load 20 kW; PV 30 kW for the first 12 h. self_consumption charges the 10 kW surplus:
    100 kWh from 50 % to the 90 % high limit is 40 kWh = 4 h, then 8 h of 10 kW export. At
    night the battery covers 20 kW from 90 % to the 10 % floor, 80 kWh = 4 h."""
    mode = load_mode("self_consumption", {})
    pv = Series("pv", [0.0, 43_200.0, 86_399.0], [30_000.0, 0.0, 0.0], False)
    bt = Backtest(
        sim_cfg(capacity_wh=100_000, initial_soc=50, taper_high_soc=95),
        ControllerSettings(soc_high_limit=90, soc_low_limit=10),
        mode,
        flat(20_000),
        pv,
    )
    k = kpis(bt.run(DAY), 100_000)
    assert k["pv_wh"] == pytest.approx(360_000, rel=1e-4)
    assert k["export_wh_before"] == pytest.approx(120_000, rel=1e-4)
    assert k["self_consumption_before"] == pytest.approx(1 - 120 / 360, abs=1e-3)
    assert k["export_wh_after"] == pytest.approx(80_000, rel=0.01)
    assert k["self_consumption_after"] == pytest.approx(1 - 80 / 360, abs=0.005)
    assert k["energy_charged_wh"] == pytest.approx(40_000, rel=0.01)
    assert k["energy_discharged_wh"] == pytest.approx(80_000, rel=0.01)
    assert k["soc_max"] == pytest.approx(90, abs=0.1)
    assert k["soc_min"] == pytest.approx(10, abs=0.1)
    assert k["peak_import_before_w"] == 20_000
    assert k["bound_s"]["soc_high"] == pytest.approx(8 * 3600, rel=0.01)
    assert k["bound_s"]["soc_low"] == pytest.approx(8 * 3600, rel=0.01)


def test_configured_limit_binds_and_is_counted() -> None:
    """A 5 kW max_discharge_w against a 10 kW excess: import is 55 kW, bound by the limit."""
    mode = load_mode("peak_shaving", {"target_w": 50_000})
    settings = ControllerSettings(max_discharge_w=5_000)
    trace = Backtest(sim_cfg(capacity_wh=1e6), settings, mode, flat(60_000)).run(600)
    assert trace.grid[-1] == pytest.approx(55_000, abs=1)
    assert kpis(trace, 1e6)["bound_s"]["discharge_limit"] == pytest.approx(600, abs=5)


# -- the command --------------------------------------------------------------------------
SITE = """
[site]
id = "bt"
[simulator]
[[simulator.devices]]
name = "battery"
kind = "battery"
capacity_wh = 20000
initial_soc = 60
taper_low_soc = 1
[[simulator.devices]]
name = "inverter"
kind = "inverter"
profile = "{profile}"
"""


def site_file(tmp_path: Path, profile: str = "sunspec") -> Path:
    p = tmp_path / "site.toml"
    p.write_text(SITE.replace("{profile}", profile))
    return p


def csv(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def backtest(tmp_path: Path, *args: str, site: Path | None = None) -> int:
    site = site or site_file(tmp_path)
    return main(["backtest", "-c", str(site), "--out", str(tmp_path / "out"), *args])


def test_command_writes_kpis_and_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = "".join(
        f"2026-12-02T{h:02d}:00:00+00:00,{60_000 if 8 <= h < 20 else 20_000}\n" for h in range(24)
    )
    load = csv(tmp_path, "load.csv", "time,load_w\n" + rows)
    pv = csv(
        tmp_path,
        "pv.csv",
        "time,pv_w\n2026-12-02T00:00:00Z,0\n2026-12-02T10:00:00Z,8000\n2026-12-02T14:00:00Z,0\n"
        "2026-12-03T00:00:00Z,0\n",
    )
    rc = backtest(
        tmp_path,
        "--mode",
        "peak_shaving",
        "--params",
        '{"target_w": 50000}',
        "--load",
        str(load),
        "--pv",
        str(pv),
        "--days",
        "1",
    )
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    stored = json.loads((tmp_path / "out" / "kpis.json").read_text())
    assert printed == stored
    assert stored["mode"] == "peak_shaving" and stored["params"]["target_w"] == 50_000
    assert stored["peak_import_before_w"] == 60_000
    assert stored["pv_wh"] == pytest.approx(8_000 * 4, rel=1e-3)
    assert stored["self_consumption_after"] == 1.0  # load always above PV: nothing exported
    assert set(stored["bound_s"]) >= {"none", "soc_low", "soc_high", "ramp", "discharge_limit"}
    png = tmp_path / "out" / "backtest.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib import image

    assert image.imread(png).shape[:2] == (700, 1200)


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("time,w\n0,1000\n60,abc\n", 3, "power 'abc': not a number"),
        ("time,w\n0,1000\n60,-5\n", 3, "must be >= 0 W"),
        ("time,w\n0,1000\n60,nan\n", 3, "must be a finite number"),
        ("time,w\n0,1000\n0,2000\n", 3, "is not after the row before"),
        ("time,w\n0,1000\n60,1,2\n", 3, "expected 2 columns"),
        ("time,w\n0,1000\nsoon,5\n", 3, "expected ISO-8601"),
        ("2026-12-02T00:00:00Z,1\n2026-12-02T00:01:00,1\n", 2, "needs a UTC offset"),
        ("0,1000\n2026-12-02T00:01:00Z,1\n", 2, "mixes ISO timestamps and seconds"),
        ("time,w\n# comment\n\n0,1000\n30,x\n", 5, "not a number"),
    ],
)
def test_bad_csv_row_refused_with_its_line_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, reason: str
) -> None:
    load = csv(tmp_path, "load.csv", text)
    with pytest.raises(SeriesError) as e:
        read_series(load)
    assert e.value.line == line and reason in e.value.reason
    rc = backtest(tmp_path, "--mode", "manual", "--load", str(load))
    assert rc == 2
    err = capsys.readouterr().err
    assert f"load.csv:{line}: " in err and reason in err
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "nonsense"], "mode: unknown mode"),
        (["--mode", "peak_shaving"], "params.target_w"),
        (["--mode", "peak_shaving", "--params", "{target"], "--params: not JSON"),
        (["--mode", "manual", "--days", "2"], "the backtest needs"),
        (["--mode", "manual", "--days", "0"], "--days"),
        (["--mode", "manual", "--pv", "/nonexistent/pv.csv"], "cannot read"),
    ],
)
def test_bad_arguments_refused_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    load = csv(tmp_path, "load.csv", "time,w\n0,1000\n43200,1000\n")  # covers one day
    assert backtest(tmp_path, "--load", str(load), *args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_site_without_a_704_inverter_or_simulator_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load = csv(tmp_path, "load.csv", "time,w\n0,1000\n43200,1000\n")
    rc = backtest(
        tmp_path, "--mode", "manual", "--load", str(load), site=site_file(tmp_path, "legacy")
    )
    assert rc == 2
    assert "simulator.devices.inverter.profile" in capsys.readouterr().err
    bare = tmp_path / "bare.toml"
    bare.write_text('[site]\nid = "bt"\n')
    assert backtest(tmp_path, "--mode", "manual", "--load", str(load), site=bare) == 2
    assert "no [simulator] section" in capsys.readouterr().err


@settings(max_examples=12, deadline=None)
@given(
    loads=st.lists(st.floats(0, 120_000), min_size=2, max_size=8),
    pvs=st.lists(st.floats(0, 80_000), min_size=2, max_size=8),
    soc=st.floats(5, 95),
    target=st.floats(0, 100_000),
)
def test_kpis_balance_for_any_load_and_pv(
    loads: list[float], pvs: list[float], soc: float, target: float
) -> None:
    """grid = load - PV - battery every step, so the energy books balance, and the SoC moves
    by exactly what the battery gave: an independent check of the meter and the counters."""
    hour = 3600.0
    load = Series("l", [i * 900.0 for i in range(len(loads))], loads, False)
    pv = Series("p", [i * 900.0 for i in range(len(pvs))], pvs, False)
    span = min(load.end, pv.end, 2 * hour)
    mode = load_mode(
        "peak_shaving", {"target_w": target, "recharge_below_w": target / 2, "recharge_w": 20_000}
    )
    bt = Backtest(
        sim_cfg(capacity_wh=50_000, initial_soc=soc), ControllerSettings(), mode, load, pv
    )
    k = kpis(bt.run(span), 50_000)
    net_before = k["import_wh_before"] - k["export_wh_before"]
    net_after = k["import_wh_after"] - k["export_wh_after"]
    battery = k["energy_discharged_wh"] - k["energy_charged_wh"]
    assert net_after == pytest.approx(net_before - battery, abs=1.0)
    assert k["soc_end"] - k["soc_start"] == pytest.approx(-battery / 50_000 * 100, abs=0.01)
    assert sum(k["bound_s"].values()) == pytest.approx(span, abs=1e-6)
    assert k["soc_min"] >= min(10.0, soc) - 0.2  # never discharged below the 10 % floor
    assert k["soc_max"] <= max(90.0, soc) + 0.2  # never charged above 90 %


SCHEDULE = """
[controller]
tz = "UTC"
[controller.schedule]
default = { mode = "manual", params = { power_w = 0 } }
[[controller.schedule.windows]]
name = "shave"
days = "daily"
start = "06:00"
end = "07:00"
mode = "peak_shaving"
params = { target_w = 55000 }
"""


def test_schedule_picks_the_mode_by_the_window_in_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Flat 60 kW; peak shaving to 55 kW from 06:00 to 07:00 only, manual 0 W otherwise:
    the battery gives 5 kW for one hour, 5 kWh, 25 % of 20 kWh."""
    site = tmp_path / "scheduled.toml"
    site.write_text(site_file(tmp_path).read_text() + SCHEDULE)
    rows = "".join(f"2026-12-02T{h:02d}:00:00+00:00,60000\n" for h in range(24))
    load = csv(tmp_path, "load.csv", "time,w\n" + rows)
    assert backtest(tmp_path, "--mode", "schedule", "--load", str(load), site=site) == 0
    k = json.loads(capsys.readouterr().out)
    assert k["mode_s"] == {"default:manual": 23 * 3600, "shave:peak_shaving": 3600}
    assert k["energy_discharged_wh"] == pytest.approx(5_000, rel=0.005)
    assert k["soc_end"] == pytest.approx(60 - 25, abs=0.1)
    assert k["peak_import_after_w"] == 60_000
    assert k["import_wh_after"] == pytest.approx(60_000 * 24 - 5_000, rel=1e-4)
    assert k["params"]["windows"][0]["name"] == "shave"
    # refused: no schedule in the site file; params given; times in seconds
    assert backtest(tmp_path, "--mode", "schedule", "--load", str(load)) == 2
    assert "no [controller.schedule]" in capsys.readouterr().err
    assert (
        backtest(tmp_path, "--mode", "schedule", "--params", "{}", "--load", str(load), site=site)
        == 2
    )
    assert "--params" in capsys.readouterr().err
    secs = csv(tmp_path, "secs.csv", "time,w\n0,60000\n43200,60000\n")
    assert backtest(tmp_path, "--mode", "schedule", "--load", str(secs), site=site) == 2
    assert "needs ISO timestamps" in capsys.readouterr().err


def test_kpis_of_a_trace_computed_by_hand() -> None:
    """15 min at 10 kW import, then 15 min at 40 kW with a one-second 100 kW spike, while the
    battery discharges 10 kW in the first half and PV gives 5 kW throughout."""
    from adapters.simulator.backtest_engine import Trace

    tr = Trace(step_s=1.0)
    tr.t = [float(i) for i in range(1801)]
    grid = [10_000.0] * 900 + [40_000.0] * 899 + [100_000.0]
    bat = [10_000.0] * 900 + [0.0] * 900
    pv = [5_000.0] * 1800
    load = [g + p + b for g, p, b in zip(grid, pv, bat, strict=True)]
    tr.grid, tr.battery, tr.pv, tr.load = [0.0, *grid], [0.0, *bat], [0.0, *pv], [0.0, *load]
    tr.soc = [50.0] * 1801
    k = kpis(tr, 100_000)
    assert k["peak_import_after_w"] == 100_000
    assert k["peak_demand_15min_after_w"] == pytest.approx((899 * 40_000 + 100_000) / 900, abs=0.1)
    assert k["peak_demand_15min_before_w"] == pytest.approx((899 * 40_000 + 100_000) / 900, abs=0.1)
    assert k["peak_import_before_w"] == 100_000
    import_wh = (20_000 * 900 + 899 * 40_000 + 100_000) / 3600  # load - PV = grid + battery
    assert k["import_wh_before"] == pytest.approx(import_wh, abs=0.1)
    assert k["energy_discharged_wh"] == pytest.approx(2_500)
    assert k["equivalent_cycles"] == pytest.approx(2_500 / 2 / 100_000, abs=1e-4)
    assert k["pv_wh"] == pytest.approx(2_500)
    assert k["self_consumption_after"] == 1.0
