# ruff: noqa: E501  (tables of cases read better one per line)
"""Grid-support functions: curves, validation, and their place between mode and pipeline."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.controller.errors import Refused
from edge.controller.grid import GridState, apply_grid, parse_grid
from edge.controller.grid.functions import droop_delta_pct, interp, pf_var
from edge.controller.grid.settings import FreqWatt
from edge.controller.modes.base import SiteView, Want
from edge.controller.pipeline import PipelineSettings, apply, soc_window


def view(**kw: object) -> SiteView:
    base = dict(
        now=0.0, soc=50.0, battery_w=0.0, grid_w=0.0, pv_w=None, meter_fresh=True,
        charge_limit_w=50000.0, discharge_limit_w=50000.0, capacity_wh=100000.0,
        setpoint_w=0.0, voltage_v=277.0, freq_hz=60.0,
    )  # fmt: skip
    base.update(kw)
    return SiteView(**base)  # type: ignore[arg-type]


# -- curves ----------------------------------------------------------------------------------
def test_interp_is_linear_between_points_and_flat_outside() -> None:
    c = ((92.0, 44.0), (98.0, 0.0), (102.0, 0.0), (108.0, -44.0))
    assert interp(c, 80) == 44.0 and interp(c, 120) == -44.0
    assert interp(c, 95) == pytest.approx(22.0)
    assert interp(c, 100) == 0.0
    assert interp(c, 105) == pytest.approx(-22.0)


def test_droop_is_zero_in_the_deadband_and_symmetric_outside() -> None:
    fw = FreqWatt(enabled=True, db_over_hz=0.036, db_under_hz=0.036, k_over=0.05, k_under=0.05)
    assert droop_delta_pct(fw, 60.03, 60.0) == 0.0 and droop_delta_pct(fw, 59.97, 60.0) == 0.0
    # 0.5 Hz under: (0.5 - 0.036) / 60 / 0.05 = 15.47 % more discharge
    assert droop_delta_pct(fw, 59.5, 60.0) == pytest.approx(15.4667, abs=1e-3)
    assert droop_delta_pct(fw, 60.5, 60.0) == pytest.approx(-15.4667, abs=1e-3)


def test_constant_pf_var() -> None:
    assert pf_var(1.0, "over", 10000) == 0.0
    assert pf_var(0.9, "over", 10000) == pytest.approx(10000 * math.tan(math.acos(0.9)))
    assert pf_var(0.9, "under", -10000) < 0


# -- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"volt_var": {"points": [[92, 44], [98, 0], [97, 0]]}}, "grid.volt_var.points.2: V 97 not above point 1"),
        ({"volt_var": {"points": [[92, 44], [98, 0], [102, 10]]}}, "grid.volt_var.points.2: Q 10 rises above point 1"),
        ({"volt_watt": {"points": [[106, 100], [200, 0]]}}, "grid.volt_watt.points.1: V 200 not in [50, 150]"),
        ({"volt_watt": {"points": [[106, "x"], [110, 0]]}}, "grid.volt_watt.points.0: P 'x' is not a number"),
        ({"volt_var": {"points": [[92, 44]]}}, "grid.volt_var.points: expected a list of 2 to 10"),
        ({"freq_watt": {"k_under": 0}}, "grid.freq_watt.k_under: 0 not in [0.01, 0.1]"),
        ({"freq_watt": {"enabled": 1}}, "grid.freq_watt.enabled: expected true or false"),
        ({"pf": {"excitation": "left"}}, "grid.pf.excitation"),
        ({"smoothing": {"enabled": True}}, "grid.smoothing.pv_rating_w: must be above 0"),
        ({"volt_vaar": {}}, "grid.volt_vaar: unknown key"),
    ],
)  # fmt: skip
def test_bad_grid_settings_are_named(raw: dict, message: str) -> None:
    with pytest.raises(Refused) as e:
        parse_grid(raw)
    assert message in e.value.message


def test_site_file_grid_section_loads_and_refuses() -> None:
    from marshmallow import ValidationError

    from edge.controller.config import ControllerSchema

    s = ControllerSchema().load({"grid": {"freq_watt": {"enabled": True, "k_under": 0.04}}})
    assert s.grid.enabled() == ["freq_watt"] and s.grid.freq_watt.k_under == 0.04
    with pytest.raises(ValidationError) as e:
        ControllerSchema().load({"grid": {"volt_var": {"points": [[92, 44], [91, 0]]}}})
    assert "grid.volt_var.points.1" in str(e.value.messages["grid"])


def test_with_function_switches_one_function_and_refuses_bad_bodies() -> None:
    g = parse_grid({"freq_watt": {"enabled": True}})
    g2 = g.with_function("volt_var", {"enabled": True, "points": [[95, 30], [105, -30]]})
    assert g2.enabled() == ["volt_var", "freq_watt"] and g.enabled() == ["freq_watt"]
    with pytest.raises(Refused, match=r"grid\.volt_var\.points\.1"):
        g.with_function("volt_var", {"points": [[95, 30], [94, -30]]})
    with pytest.raises(Refused, match="function: must be one of"):
        g.with_function("fw", {})


# -- the stage -------------------------------------------------------------------------------
def test_freq_watt_overrides_the_mode_from_the_power_held_at_the_event() -> None:
    g = parse_grid({"rating_w": 50000, "freq_watt": {"enabled": True}})
    out = apply_grid(Want(-10000, "peak shaving recharge"), view(freq_hz=59.5), g, GridState(), 1)
    assert out.set_by == "freq_watt" and out.want.why.startswith("freq_watt: 59.500 Hz")
    assert out.want.power_w == pytest.approx(-10000 + 0.154667 * 50000, abs=1)
    # Next tick the mode wants something else: the droop holds its base.
    out2 = apply_grid(Want(+20000, "x"), view(freq_hz=59.5), g, out.state, 1)
    assert out2.want.power_w == pytest.approx(out.want.power_w)
    back = apply_grid(Want(+20000, "mode"), view(freq_hz=60.0), g, out2.state, 1)
    assert back.set_by is None and back.want.power_w == 20000 and back.state.droop_base_w is None


def test_volt_watt_caps_export_and_volt_var_sets_q() -> None:
    g = parse_grid(
        {"nominal_v": 277, "rating_w": 50000, "volt_watt": {"enabled": True},
         "volt_var": {"enabled": True, "var_rating_var": 30000}}
    )  # fmt: skip
    out = apply_grid(Want(40000, "mode"), view(voltage_v=277 * 1.08), g, GridState(), 1)
    assert out.set_by == "volt_watt" and out.want.power_w == pytest.approx(25000)
    assert out.var == pytest.approx(-0.44 * 30000)
    low = apply_grid(Want(40000, "mode"), view(voltage_v=277 * 0.95), g, GridState(), 1)
    assert low.set_by is None and low.var == pytest.approx(0.22 * 30000)


def test_smoothing_limits_the_poc_ramp_with_the_battery() -> None:
    g = parse_grid({"smoothing": {"enabled": True, "pv_rating_w": 60000, "ramp_pct_per_min": 10}})
    state, pv = GridState(last_poc_w=50000.0), [50000.0, 20000.0, 20000.0, 20000.0]
    poc = []
    for p in pv:
        out = apply_grid(Want(0, "hold"), view(pv_w=p), g, state, 1)
        state = out.state.settle(out.want.power_w, p)
        poc.append(p + out.want.power_w)
    steps = [abs(b - a) for a, b in zip([50000.0, *poc], poc, strict=False)]
    assert max(steps) <= 100.0 + 1e-6  # 10 % of 60 kW per minute = 100 W/s
    assert out.set_by == "smoothing" and out.want.power_w > 29000


# -- property: grid support never takes the pipeline outside limits or SoC bounds ----------
curve_y = st.floats(-100, 100)


@st.composite
def curves(draw: st.DrawFn) -> list[list[float]]:
    n = draw(st.integers(2, 6))
    xs = sorted(draw(st.lists(st.floats(50, 150), min_size=n, max_size=n, unique=True)))
    ys = sorted((draw(curve_y) for _ in xs), reverse=True)
    return [[x, y] for x, y in zip(xs, ys, strict=True)]


@settings(max_examples=300, deadline=None)
@given(
    vv=curves(), vw=curves(),
    k=st.floats(0.01, 0.1), db=st.floats(0, 1),
    trace=st.lists(st.tuples(st.floats(200, 350), st.floats(55, 65), st.floats(0, 80000),
                             st.floats(-1e5, 1e5)), min_size=1, max_size=30),
    soc=st.one_of(st.none(), st.floats(0, 100)),
    cha=st.floats(0, 60000), dis=st.floats(0, 60000), ramp=st.floats(0, 5000),
)  # fmt: skip
def test_random_curves_and_grid_traces_stay_within_limits_and_soc_bounds(
    vv, vw, k, db, trace, soc, cha, dis, ramp
) -> None:
    g = parse_grid(
        {"rating_w": 50000,
         "volt_var": {"enabled": True, "points": vv}, "volt_watt": {"enabled": True, "points": vw},
         "freq_watt": {"enabled": True, "k_over": k, "k_under": k, "db_over_hz": db, "db_under_hz": db},
         "smoothing": {"enabled": True, "pv_rating_w": 80000, "ramp_pct_per_min": 5}}
    )  # fmt: skip
    ps = PipelineSettings(90.0, 10.0, 0.0, ramp)
    state, prev = GridState(), 0.0
    for v, hz, pv, want in trace:
        site = view(voltage_v=v, freq_hz=hz, pv_w=pv, soc=soc, charge_limit_w=cha,
                    discharge_limit_w=dis, setpoint_w=prev)  # fmt: skip
        out = apply_grid(Want(want, "mode"), site, g, state, 1.0)
        applied = apply(out.want.power_w, site, ps, prev, 1.0)
        lo, hi, _, _ = soc_window(soc, ps)
        assert -cha - 1e-6 <= applied.power_w <= dis + 1e-6
        assert lo - 1e-6 <= applied.power_w <= hi + 1e-6
        assert math.isfinite(out.var)
        state, prev = out.state.settle(applied.power_w, pv), applied.power_w
