"""Each shipped mode as a pure function: a SiteView in, a Want out; bad params named."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from edge.controller.errors import Refused
from edge.controller.modes import SiteView, load_mode, mode_names

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC).timestamp()
SITE = SiteView(
    now=NOW,
    soc=50.0,
    battery_w=0.0,
    grid_w=0.0,
    pv_w=None,
    meter_fresh=True,
    charge_limit_w=50_000.0,
    discharge_limit_w=50_000.0,
    capacity_wh=100_000.0,
    setpoint_w=0.0,
)


def test_registered_modes_come_from_entry_points() -> None:
    assert {"manual", "peak_shaving", "self_consumption", "soc_target"} <= set(mode_names())


@pytest.mark.parametrize(
    ("power", "want", "text"),
    [(5000, 5000, "discharge 5.0 kW"), (-3000, -3000, "charge 3.0 kW"), (0, 0, "hold")],
)
def test_manual_returns_the_commanded_power(power: float, want: float, text: str) -> None:
    w = load_mode("manual", {"power_w": power}).step(SITE)
    assert w.power_w == want
    assert text in w.why


def test_peak_shaving_discharges_the_excess_by_gain_steps() -> None:
    m = load_mode("peak_shaving", {"target_w": 50_000, "gain": 0.5})
    w = m.step(replace(SITE, grid_w=54_000))
    assert w.power_w == pytest.approx(2_000)  # half the 4 kW error, from 0
    assert w.why == "import 54.0 kW > target 50.0 kW, discharge 2.0 kW"
    # next tick: battery gives 2 kW, meter shows 52 kW: one more half step
    assert m.step(replace(SITE, grid_w=52_000, setpoint_w=2_000)).power_w == pytest.approx(3_000)
    # at the target: the setpoint stays where it is (the integrator's fixed point)
    assert m.step(replace(SITE, grid_w=50_000, setpoint_w=4_000)).power_w == pytest.approx(4_000)


def test_peak_shaving_converges_on_a_simulated_site() -> None:
    """Meter = load - battery, read one tick late: import ends at the target, no overshoot
    below it by more than 10 % of the step."""
    m = load_mode("peak_shaving", {"target_w": 50_000})
    load, sp, meter = 70_000.0, 0.0, 70_000.0
    lowest = meter
    for _ in range(30):
        sp = m.step(replace(SITE, grid_w=meter, setpoint_w=sp)).power_w
        meter = load - sp  # seen at the next tick
        lowest = min(lowest, meter)
    assert meter == pytest.approx(50_000, abs=50)
    assert lowest >= 50_000 - 0.1 * 20_000


def test_peak_shaving_holds_between_recharge_threshold_and_target() -> None:
    m = load_mode(
        "peak_shaving", {"target_w": 50_000, "recharge_below_w": 40_000, "recharge_w": 10_000}
    )
    w = m.step(replace(SITE, grid_w=45_000))
    assert w.power_w == 0
    assert "hold" in w.why


def test_peak_shaving_recharges_only_below_the_threshold_and_at_most_recharge_w() -> None:
    m = load_mode(
        "peak_shaving", {"target_w": 50_000, "recharge_below_w": 40_000, "recharge_w": 10_000}
    )
    w = m.step(replace(SITE, grid_w=36_000))
    assert w.power_w == pytest.approx(-2_000)  # half of the 4 kW of room below 40 kW
    assert "recharge 2.0 kW" in w.why
    assert m.step(replace(SITE, grid_w=0)).power_w == -10_000  # capped at recharge_w
    # while recharging at 10 kW the import rises to 45 kW: the recharge backs off, no new peak
    assert m.step(replace(SITE, grid_w=45_000, setpoint_w=-10_000)).power_w == pytest.approx(-7_500)


def test_peak_shaving_without_recharge_params_never_charges() -> None:
    m = load_mode("peak_shaving", {"target_w": 50_000})
    assert m.step(replace(SITE, grid_w=0)).power_w == 0


def test_self_consumption_covers_import_and_soaks_export() -> None:
    m = load_mode("self_consumption", {"deadband_w": 100})
    assert m.step(replace(SITE, grid_w=8_000)).power_w == pytest.approx(4_000)
    assert m.step(replace(SITE, grid_w=-6_000)).power_w == pytest.approx(-3_000)
    inside = m.step(replace(SITE, grid_w=80, setpoint_w=7_000))
    assert inside.power_w == 7_000
    assert "within deadband" in inside.why


def test_self_consumption_zero_export_never_discharges_past_the_load() -> None:
    m = load_mode("self_consumption", {"deadband_w": 0, "zero_export": True, "gain": 1.0})
    # battery gives 5 kW, the site exports 2 kW: the discharge drops to 3 kW at once
    w = m.step(replace(SITE, grid_w=-2_000, setpoint_w=5_000))
    assert w.power_w == pytest.approx(3_000)
    plain = load_mode("self_consumption", {"deadband_w": 0, "gain": 1.0})
    assert plain.step(replace(SITE, grid_w=-2_000, setpoint_w=5_000)).power_w == pytest.approx(
        3_000
    )
    # import: both discharge to cover it; zero_export caps at load (setpoint + import)
    assert m.step(replace(SITE, grid_w=4_000, setpoint_w=1_000)).power_w == pytest.approx(5_000)


def test_soc_target_charges_at_the_lowest_constant_power() -> None:
    by = datetime(2026, 12, 2, 14, 0, tzinfo=UTC).isoformat()  # 2 h from NOW
    m = load_mode("soc_target", {"target_soc": 80, "by": by})
    w = m.step(SITE)  # 30 % of 100 kWh in 2 h
    assert w.power_w == pytest.approx(-15_000)
    assert "charge 15.0 kW" in w.why
    down = load_mode("soc_target", {"target_soc": 30, "by": by})
    assert down.step(SITE).power_w == pytest.approx(10_000)


def test_soc_target_caps_holds_at_target_and_after_the_deadline() -> None:
    by = datetime(2026, 12, 2, 13, 0, tzinfo=UTC).isoformat()
    capped = load_mode("soc_target", {"target_soc": 80, "by": by, "max_power_w": 20_000})
    w = capped.step(SITE)  # would need 30 kW
    assert w.power_w == -20_000
    assert "capped" in w.why
    m = load_mode("soc_target", {"target_soc": 80, "by": by})
    assert m.step(replace(SITE, soc=79.8)).power_w == 0
    late = m.step(replace(SITE, now=NOW + 7200))
    assert late.power_w == 0
    assert "past" in late.why
    assert m.step(replace(SITE, capacity_wh=None)).power_w == 0
    assert m.step(replace(SITE, soc=None)).power_w == 0


def test_meter_modes_hold_without_a_reading() -> None:
    for name, params in (("peak_shaving", {"target_w": 1}), ("self_consumption", {})):
        m = load_mode(name, params)
        assert m.needs_meter
        assert m.step(replace(SITE, grid_w=None)).power_w == 0
    assert not load_mode("soc_target", {"target_soc": 1, "by": "2026-01-01T00:00:00Z"}).needs_meter


@pytest.mark.parametrize(
    ("name", "params", "code", "needle"),
    [
        ("nope", {}, "out_of_range", "mode: unknown mode 'nope'"),
        (5, {}, "invalid_payload", "mode: expected a string"),
        ("manual", [1], "invalid_payload", "params: expected an object"),
        ("manual", {"power_w": "5"}, "invalid_payload", "params.power_w: expected a number"),
        ("manual", {"power_w": True}, "invalid_payload", "params.power_w: expected a number"),
        ("manual", {"power_w": 10**400}, "invalid_payload", "params.power_w: must be a finite"),
        ("manual", {"power_w": 2e9}, "out_of_range", "params.power_w"),
        ("peak_shaving", {}, "invalid_payload", "params.target_w: Missing"),
        ("peak_shaving", {"target_w": 1, "x": 1}, "invalid_payload", "params.x: Unknown field"),
        (
            "peak_shaving",
            {"target_w": 10, "recharge_below_w": 20},
            "out_of_range",
            "params.recharge_below_w: must not exceed target_w",
        ),
        ("peak_shaving", {"target_w": 10, "gain": 0}, "out_of_range", "params.gain"),
        ("self_consumption", {"zero_export": 1}, "invalid_payload", "params.zero_export"),
        (
            "soc_target",
            {"target_soc": 101, "by": "2026-01-01T00:00:00Z"},
            "out_of_range",
            "params.target_soc",
        ),
        (
            "soc_target",
            {"target_soc": 50, "by": "2026-01-01T00:00:00"},
            "invalid_payload",
            "params.by: expected an ISO-8601 date and time with a UTC offset",
        ),
        ("soc_target", {"target_soc": 50, "by": 5}, "invalid_payload", "params.by"),
    ],
)
def test_bad_params_are_refused_naming_the_key(
    name: object, params: object, code: str, needle: str
) -> None:
    with pytest.raises(Refused) as exc:
        load_mode(name, params)
    assert exc.value.code == code
    assert needle in exc.value.message
