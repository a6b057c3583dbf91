"""Grid support in the controller: controller-side from the meter (123 profile), native
writes confirmed by read-back (704 profile), cmd/grid, the state topic's grid object."""

from __future__ import annotations

import pytest

from tests.unit.controller_fakes import Rig, make_rig, run

GRID = {"rating_w": 50000, "freq_watt": {"enabled": True}}
NATIVE_704 = {("711", "Ena"): 0, ("705", "Ena"): 0, ("706", "Ena"): 0, ("704", "PFWInjEna"): 0,
              ("705", "NPt"): 4, ("706", "NPt"): 2}  # fmt: skip


def meter(rig: Rig, w: float = 30000.0, hz: float = 60.0, v: float = 277.0) -> None:
    rig.feed("meter", "", "ts", 1.7e9 + rig.clock.now)  # the adapter's poll time
    rig.feed("meter", "203", "W", w)
    rig.feed("meter", "203", "Hz", hz)
    rig.feed("meter", "203", "PhVphA", v)
    rig.ctl.on_status("meter", "online")


def test_controller_side_droop_overrides_manual_and_names_itself() -> None:
    async def main() -> None:
        rig = make_rig("sunspec_123", grid=GRID)
        meter(rig)
        await rig.to_holding()
        assert rig.ctl.grid_report()["functions"]["freq_watt"]["where"] == "controller"
        r = await rig.cmd("charge", {"power_w": 10000})
        assert r["ok"]
        await rig.advance(2, soc=50)
        assert rig.ctl.applied_w == pytest.approx(-10000, abs=100)
        for _ in range(3):
            meter(rig, hz=59.5)
            await rig.advance(1, soc=50)
        want = -10000 + (0.5 - 0.036) / 60 / 0.05 * 50000  # -2.27 kW: charge less
        assert rig.ctl.requested_w == pytest.approx(want, abs=1)
        assert rig.ctl.why.startswith("freq_watt: 59.500 Hz")
        rep = rig.ctl.snapshot()["grid"]["functions"]["freq_watt"]
        assert rep["enabled"] and rep["doing"].startswith("droop +15.5 %")
        assert rep["response_s"] == pytest.approx(2.0, abs=0.2)  # meter every 1 s + 1 s tick
        meter(rig, hz=60.0)
        await rig.advance(2, soc=50)
        assert rig.ctl.requested_w == pytest.approx(-10000, abs=1)
        assert rig.ctl.why.startswith("manual:")

    run(main())


def test_soc_bounds_still_apply_after_grid_support() -> None:
    async def main() -> None:
        rig = make_rig("sunspec_123", grid=GRID, soc_high_limit=90)
        meter(rig)
        await rig.to_holding()
        await rig.cmd("hold")
        for _ in range(3):
            meter(rig, hz=60.5)  # over-frequency: the droop wants to charge
            await rig.advance(1, soc=95.0)
        assert rig.ctl.requested_w == pytest.approx(-7733.3, abs=1) and rig.ctl.applied_w == 0.0
        assert rig.ctl.why.startswith("freq_watt: 60.500 Hz")
        assert rig.ctl.why.endswith("bound by: soc_high")

    run(main())


def test_native_functions_are_written_at_enable_and_confirmed() -> None:
    async def main() -> None:
        grid = {
            **GRID,
            "volt_var": {"enabled": True, "points": [[93, 40], [99, 0], [101, 0], [107, -40]]},
        }
        rig = make_rig("sunspec_704", inverter=NATIVE_704, grid=grid)
        meter(rig)
        await rig.to_holding()
        seq = rig.dev.sequence()
        assert "711/Ctl/1/KUf=0.05" in seq and "711/Ena=1" in seq
        assert seq.index("711/Ctl/1/KUf=0.05") < seq.index("711/Ena=1")
        assert "705/Crv/1/Pt/1/V=93.0" in seq and "705/Ena=1" in seq
        assert "706/Ena=0" in seq and "704/PFWInjEna=0" in seq
        rep = rig.ctl.grid_report()
        assert rep["functions"]["freq_watt"]["where"] == "inverter"
        assert rep["functions"]["freq_watt"]["response_s"] == 5.0
        assert rep["differs"] == []
        # The controller leaves native functions to the inverter: no droop of its own.
        await rig.cmd("charge", {"power_w": 10000})
        meter(rig, hz=59.0)
        await rig.advance(2, soc=50)
        assert rig.ctl.requested_w == pytest.approx(-10000)

    run(main())


def test_a_curve_the_inverter_holds_differently_is_reported() -> None:
    rig = make_rig("sunspec_704", inverter={**NATIVE_704, ("711", "Ctl/1/KUf"): 0.02}, grid=GRID)
    assert (
        "freq_watt: 711/Ctl/1/KUf is 0.02 on the inverter, 0.05 in the site file"
        in rig.ctl.grid_report()["differs"]
    )
    assert rig.ctl.p.restart_report()["grid_differs"]


def test_native_write_that_fails_read_back_trips() -> None:
    async def main() -> None:
        rig = make_rig("sunspec_704", inverter=NATIVE_704, grid=GRID)
        rig.dev.readback[("inverter", "711", "Ctl/1/KUf")] = 0.04
        meter(rig)
        await rig.cmd("start")
        rig.bat("State", 3)
        await rig.settle()
        assert rig.ctl.state == "fault" and "write_failed" in rig.fault_codes()

    run(main())


def test_cmd_grid_switches_a_function_and_refuses_bad_curves() -> None:
    async def main() -> None:
        rig = make_rig("sunspec_704", inverter=NATIVE_704, grid=GRID)
        meter(rig)
        await rig.to_holding()
        r = await rig.cmd(
            "grid",
            {"function": "volt_var", "params": {"enabled": True, "points": [[95, 30], [94, -30]]}},
        )
        assert not r["ok"] and "grid.volt_var.points.1" in r["error"]["message"]
        assert not rig.ctl.grid.volt_var.enabled
        r = await rig.cmd(
            "grid",
            {
                "function": "volt_watt",
                "params": {"enabled": True, "points": [[105, 100], [107, 50], [110, 0]]},
            },
        )
        assert not r["ok"] and "706 holds 2" in r["error"]["message"]  # NPt 2
        r = await rig.cmd("grid", {"function": "freq_watt", "params": {"enabled": False}})
        assert r["ok"] and r["grid"]["functions"]["freq_watt"]["enabled"] is False
        assert rig.dev.of("Ena", "711")[-1] == 0
        assert any(e["kind"] == "grid" for e in rig.events)
        r = await rig.cmd(
            "grid", {"function": "smoothing", "params": {"enabled": True, "pv_rating_w": 60000}}
        )
        assert r["ok"] and r["grid"]["functions"]["smoothing"]["where"] == "controller"

    run(main())


def test_controller_side_volt_var_writes_q_to_a_123_inverter() -> None:
    async def main() -> None:
        grid = {"rating_w": 50000, "volt_var": {"enabled": True, "var_rating_var": 90000}}
        rig = make_rig("sunspec_123", grid=grid)
        meter(rig)
        await rig.to_holding()
        await rig.cmd("discharge", {"power_w": 5000})
        meter(rig, v=277 * 1.05)  # 105 %: Q -22 % of 90 kvar = -19.8 kvar; WMax 90 kW
        await rig.advance(2, soc=50)
        assert rig.dev.of("VArWMaxPct", "123")[-1] == pytest.approx(-22.0)
        assert rig.dev.of("VArPct_Ena", "123")[-1] == 1
        rep = rig.ctl.grid_report()["functions"]["volt_var"]
        assert rep["where"] == "controller" and "Q -19.8 kvar" in rep["doing"]

    run(main())


def test_models_seen_only_after_start_stay_controller_side_until_written() -> None:
    async def main() -> None:
        rig = make_rig("sunspec_704", grid=GRID)  # 711 not read yet at start
        meter(rig)
        await rig.to_holding()
        assert not any(w.model == "711" for w in rig.dev.writes)
        for (m, p), v in NATIVE_704.items():
            rig.feed("inverter", m, p, v)
        assert rig.ctl.grid_report()["functions"]["freq_watt"]["where"] == "controller"
        await rig.cmd("charge", {"power_w": 10000})
        meter(rig, hz=59.5)
        await rig.advance(2, soc=50)
        assert rig.ctl.why.startswith("freq_watt:")  # not left to an inverter never written

    run(main())
