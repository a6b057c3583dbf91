"""The setpoint pipeline: SoC bounds, backup reserve, limits, ramp, in that order.

The hypothesis property runs every shipped mode on random telemetry and random valid params:
nothing the pipeline lets through exceeds the limits, charges at or above soc_high_limit,
discharges at or below the SoC floor (soc_low_limit or the backup reserve), or ramps faster
than the ramp allows.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.controller.config import ControllerSchema
from edge.controller.modes import SiteView, load_mode, mode_names
from edge.controller.pipeline import PipelineSettings, apply

S = PipelineSettings(soc_high_limit=90, soc_low_limit=10, backup_reserve_soc=0, ramp_w_per_s=0)
SITE = SiteView(
    now=0.0,
    soc=50.0,
    battery_w=0.0,
    grid_w=0.0,
    pv_w=None,
    meter_fresh=True,
    charge_limit_w=20_000.0,
    discharge_limit_w=30_000.0,
    capacity_wh=100_000.0,
    setpoint_w=0.0,
)


def test_within_everything_nothing_binds() -> None:
    a = apply(5_000, SITE, S, prev_w=0, dt_s=1)
    assert (a.power_w, a.bound_by) == (5_000, "none")


@pytest.mark.parametrize(
    ("want", "soc", "power", "bound"),
    [
        (40_000, 50, 30_000, "discharge_limit"),
        (-40_000, 50, -20_000, "charge_limit"),
        (-5_000, 90, 0, "soc_high"),
        (-40_000, 95, 0, "soc_high"),  # the SoC bound is named, it came first
        (5_000, 90, 5_000, "none"),
        (5_000, 10, 0, "soc_low"),
        (-5_000, 10, -5_000, "none"),
        (5_000, None, 0, "soc_unknown"),
        (-5_000, None, 0, "soc_unknown"),
        (float("nan"), 50, 0, "none"),
    ],
)
def test_bounds_in_order(want: float, soc: float | None, power: float, bound: str) -> None:
    a = apply(want, replace(SITE, soc=soc), S, prev_w=0, dt_s=1)
    assert (a.power_w, a.bound_by) == (power, bound)


def test_backup_reserve_is_a_floor_above_soc_low() -> None:
    s = replace(S, backup_reserve_soc=30)
    assert apply(5_000, replace(SITE, soc=30), s, 0, 1).bound_by == "backup_reserve"
    assert apply(5_000, replace(SITE, soc=31), s, 0, 1).power_w == 5_000
    # a reserve below soc_low_limit changes nothing: soc_low is the floor
    low = replace(S, backup_reserve_soc=5)
    assert apply(5_000, replace(SITE, soc=10), low, 0, 1).bound_by == "soc_low"


def test_ramp_limits_the_step_but_never_a_bound_that_tightens() -> None:
    s = replace(S, ramp_w_per_s=1_000)
    a = apply(10_000, SITE, s, prev_w=0, dt_s=2)
    assert (a.power_w, a.bound_by) == (2_000, "ramp")
    # at soc_low the discharge goes to 0 at once, ramp or not
    b = apply(10_000, replace(SITE, soc=5), s, prev_w=10_000, dt_s=1)
    assert (b.power_w, b.bound_by) == (0, "soc_low")
    # a limit lowered under the previous value applies at once too
    c = apply(25_000, replace(SITE, discharge_limit_w=8_000), s, prev_w=25_000, dt_s=1)
    assert c.power_w == 8_000


def test_settings_come_from_the_controller_section() -> None:
    cs = ControllerSchema().load({"backup_reserve_soc": 25, "ramp_w_per_s": 500})
    ps = PipelineSettings.of(cs)
    assert (ps.backup_reserve_soc, ps.ramp_w_per_s, ps.soc_high_limit) == (25, 500, 90)


# -- the property, for every shipped mode ------------------------------------------------------
power = st.floats(-2e5, 2e5, allow_nan=False)
limit = st.floats(0, 1e5, allow_nan=False)
maybe = st.one_of(st.none(), st.floats(-2e5, 2e5, allow_nan=False))
soc = st.one_of(st.none(), st.floats(0, 100, allow_nan=False))
by = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.isoformat())

PARAMS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "manual": st.fixed_dictionaries({"power_w": power}),
    "peak_shaving": st.floats(0, 1e5).flatmap(
        lambda t: st.fixed_dictionaries(
            {
                "target_w": st.just(t),
                "recharge_below_w": st.floats(0, t),
                "recharge_w": st.floats(0, 1e5),
                "gain": st.floats(0.01, 1),
            }
        )
    ),
    "self_consumption": st.fixed_dictionaries(
        {"deadband_w": st.floats(0, 1e4), "zero_export": st.booleans(), "gain": st.floats(0.01, 1)}
    ),
    "soc_target": st.fixed_dictionaries(
        {
            "target_soc": st.floats(0, 100),
            "by": by,
            "max_power_w": st.one_of(st.none(), st.floats(0, 1e5)),
        }
    ),
}


def test_every_shipped_mode_is_covered_by_the_property() -> None:
    assert set(mode_names()) <= set(PARAMS)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, dict[str, Any], SiteView, PipelineSettings, float, float]:
    name = draw(st.sampled_from(sorted(PARAMS)))
    params = draw(PARAMS[name])
    low = draw(st.floats(0, 50))
    s = PipelineSettings(
        soc_high_limit=draw(st.floats(low + 1, 100)),
        soc_low_limit=low,
        backup_reserve_soc=draw(st.floats(0, 100)),
        ramp_w_per_s=draw(st.one_of(st.just(0.0), st.floats(1, 1e5))),
    )
    prev = draw(power)
    site = SiteView(
        now=draw(st.floats(1.7e9, 1.9e9)),
        soc=draw(soc),
        battery_w=draw(maybe),
        grid_w=draw(maybe),
        pv_w=draw(st.one_of(st.none(), st.floats(0, 1e5))),
        meter_fresh=draw(st.booleans()),
        charge_limit_w=draw(limit),
        discharge_limit_w=draw(limit),
        capacity_wh=draw(st.one_of(st.none(), st.floats(0, 1e6))),
        setpoint_w=prev,
    )
    return name, params, site, s, prev, draw(st.floats(0, 10))


@settings(max_examples=400, deadline=None)
@given(cases())
def test_nothing_written_exceeds_limits_or_crosses_soc_bounds(
    case: tuple[str, dict[str, Any], SiteView, PipelineSettings, float, float],
) -> None:
    name, params, site, s, prev, dt = case
    want = load_mode(name, params).step(site)
    out = apply(want.power_w, site, s, prev, dt).power_w
    assert -site.charge_limit_w <= out <= site.discharge_limit_w
    if site.soc is None:
        assert out == 0
    else:
        if site.soc >= s.soc_high_limit:
            assert out >= 0, "charged at or above soc_high_limit"
        if site.soc <= max(s.soc_low_limit, s.backup_reserve_soc):
            assert out <= 0, "discharged at or below the SoC floor"
    if s.ramp_w_per_s > 0:
        # the ramp starts from the previous value pulled inside everything that binds now
        lo, hi = -site.charge_limit_w, site.discharge_limit_w
        if site.soc is None:
            lo = hi = 0.0
        else:
            if site.soc >= s.soc_high_limit:
                lo = 0.0
            if site.soc <= max(s.soc_low_limit, s.backup_reserve_soc):
                hi = 0.0
        base = min(hi, max(lo, prev))
        assert abs(out - base) <= s.ramp_w_per_s * dt * (1 + 1e-9) + 1e-6
