"""Property test of the whole controller under every shipped mode: random mode commands,
meter readings, SoC, limits, time and failures. On every power write it checks, against the
test's own model of the telemetry it fed, that nothing exceeds the limits in force, nothing
charges at or above soc_high_limit, nothing discharges at or below the SoC floor (soc_low_limit
or the backup reserve) and nothing flows while the SoC is unknown; and that every state still
has a way out (the random command sequences of test_controller_properties, plus modes).
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.controller.machine import STATES
from tests.unit.controller_fakes import Rig, make_rig
from tests.unit.test_controller_properties import (
    MAX_CHARGE_CFG,
    Model,
    _apply,
    _install_checks,
    _way_out,
    command,
    failure,
    telemetry,
)

SOC_HIGH, SOC_LOW, RESERVE = 90.0, 10.0, 25.0

power = st.floats(-2e5, 2e5, allow_nan=False)
mode_body = st.one_of(
    st.fixed_dictionaries(
        {"mode": st.just("manual"), "params": st.fixed_dictionaries({"power_w": power})}
    ),
    st.floats(0, 1e5).flatmap(
        lambda t: st.fixed_dictionaries(
            {
                "mode": st.just("peak_shaving"),
                "params": st.fixed_dictionaries(
                    {
                        "target_w": st.just(t),
                        "recharge_below_w": st.floats(0, t),
                        "recharge_w": st.floats(0, 1e5),
                        "gain": st.floats(0.05, 1),
                    }
                ),
            }
        )
    ),
    st.fixed_dictionaries(
        {
            "mode": st.just("self_consumption"),
            "params": st.fixed_dictionaries(
                {"deadband_w": st.floats(0, 1e4), "zero_export": st.booleans()}
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "mode": st.just("soc_target"),
            "params": st.fixed_dictionaries(
                {
                    "target_soc": st.floats(0, 100),
                    "by": st.sampled_from(
                        [
                            "2023-11-14T23:00:00+00:00",
                            "2023-11-15T12:00:00+00:00",
                            "2020-01-01T00:00:00Z",
                        ]
                    ),
                }
            ),
        }
    ),
    st.just({"mode": "peak_shaving", "params": {"target_w": "x"}}),
    st.just({"mode": "schedule"}),
)
mode_cmd = st.tuples(st.just("cmd"), st.just("mode"), mode_body)
meter = st.one_of(
    st.tuples(
        st.just("meter"),
        st.just("W"),
        st.one_of(
            st.sampled_from([None, -50e3, -5e3, -100.0, 0.0, 100.0, 5e3, 50e3]),
            st.floats(-2e5, 2e5),
        ),
    ),
    st.tuples(st.just("meter"), st.just("status"), st.sampled_from(["online", "offline"])),
    st.tuples(st.just("bat"), st.just("WHRtg"), st.one_of(st.none(), st.floats(0, 2e5))),
)
# Each step: a SoC (at and around every bound), a meter reading, maybe a mode command, maybe
# other telemetry or a command, then time in ticks; so every step runs the control loop.
soc_value = st.sampled_from([None, 5.0, 10.0, 25.0, 26.0, 50.0, 89.9, 90.0, 95.0])
meter_value = st.one_of(
    st.sampled_from([None, -50e3, -5e3, -100.0, 0.0, 100.0, 5e3, 50e3]), st.floats(-2e5, 2e5)
)
extra = st.one_of(st.none(), st.none(), mode_cmd, mode_cmd, command, telemetry, meter, failure)
step = st.tuples(soc_value, meter_value, extra, st.floats(0.1, 3.0), st.sampled_from([0.1, 0.3]))
steps = st.lists(step, min_size=3, max_size=25)


def _soc_checks(rig: Rig, soc: list[float | None], violations: list[str]) -> None:
    dev = rig.dev
    original = dev.write

    async def checked(device: str, mdl: str, point: str, value: Any) -> dict[str, Any]:
        if point == "WSet":
            w, s = float(value), soc[0]
            if s is None and w != 0:
                violations.append(f"WSet {w} with SoC unknown in {rig.ctl.state}")
            elif s is not None and s >= SOC_HIGH and w < 0:
                violations.append(f"charge {w} at SoC {s} in {rig.ctl.state}")
            elif s is not None and s <= max(SOC_LOW, RESERVE) and w > 0:
                violations.append(f"discharge {w} at SoC {s} in {rig.ctl.state}")
        return await original(device, mdl, point, value)

    dev.write = checked  # type: ignore[method-assign]


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(steps=steps)
def test_every_mode_stays_within_limits_and_soc_bounds(steps: list[Any]) -> None:
    async def main() -> None:
        rig = make_rig(
            max_charge_w=MAX_CHARGE_CFG,
            backup_reserve_soc=RESERVE,
            tz="Europe/Berlin",
            schedule={"default": {"mode": "self_consumption"}},
        )
        rig.dev.echo = False
        model = Model()
        violations: list[str] = []
        soc: list[float | None] = [50.0]
        _install_checks(rig, model, violations)
        _soc_checks(rig, soc, violations)
        rig.ctl.on_status("meter", "online")
        await rig.to_holding()
        for soc_w, meter_w, other, seconds, tick in steps:
            soc[0] = soc_w
            rig.bat("SoC", soc_w)
            rig.feed("meter", "203", "W", meter_w)
            rig.feed("meter", "", "ts", 1.7e9 + rig.clock.now)
            if other is not None:
                kind, a, b = other
                if kind == "meter" and a == "status":
                    rig.ctl.on_status("meter", b)
                elif kind == "meter":
                    rig.feed("meter", "203", "W", b)
                elif kind == "bat" and a == "SoC":
                    pass  # the step's SoC is the one in force
                else:
                    await _apply(rig, model, other)
            await rig.settle()
            # time passes with the SoC and the meter kept fresh, as adapters would
            end = rig.clock.now + seconds
            while rig.clock.now < end - 1e-9:
                await rig.advance(min(tick, end - rig.clock.now), step=tick)
                rig.bat("SoC", soc_w)
                rig.feed("meter", "", "ts", 1.7e9 + rig.clock.now)
            await rig.settle()
            assert rig.ctl.state in STATES
            assert not violations, violations
        await _way_out(rig)
        assert not violations, violations
        await rig.ctl.close()

    asyncio.run(asyncio.wait_for(main(), 60))
