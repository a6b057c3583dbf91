"""Property tests: random sequences of commands, telemetry, time and device failures.

Invariants checked on every device write and after every step:
- no power write ever exceeds the limits in force, computed here independently from the
  telemetry the test fed (min of AChaMax*V, WChaRteMax, inverter rating, configured; 0 W when
  the battery's own limits are unknown);
- outside holding/charging/discharging/soc_recovery the only power written is 0;
- every command gets exactly one answer (accepted, or refused with a known code);
- no state is left without a way out: `stop` (then `reset` once causes are gone) always leads
  back to `stopped`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.controller.machine import ACTIVE, STATES, BessMachine
from tests.unit.controller_fakes import FakeDevices, Rig, make_rig

CODES = {
    "not_allowed_in_state",
    "invalid_payload",
    "out_of_range",
    "fault_active",
    "unknown_command",
}
MAX_CHARGE_CFG = 70000.0
INVERTER_RATING = 90000.0

maybe_num = st.one_of(st.none(), st.floats(0, 400, allow_nan=False))
command = st.tuples(
    st.just("cmd"),
    st.sampled_from(
        ["start", "stop", "hold", "reset", "get_state", "charge", "discharge", "recover_soc"]
    ),
    st.one_of(
        st.fixed_dictionaries({"power_w": st.floats(-1e5, 3e5, allow_nan=False)}),
        st.fixed_dictionaries({"power_w": st.integers(0, 300000)}),
        st.fixed_dictionaries({"power_w": st.integers(0, 300000)}),
        st.just({}),
        st.just({"power_w": "x"}),
    ),
)
telemetry = st.one_of(
    st.tuples(st.just("bat"), st.just("SoC"), st.one_of(st.none(), st.floats(0, 100))),
    st.tuples(st.just("bat"), st.sampled_from(["AChaMax", "ADisChaMax"]), maybe_num),
    st.tuples(st.just("bat"), st.just("V"), st.one_of(st.none(), st.floats(0, 1000))),
    st.tuples(
        st.just("bat"),
        st.sampled_from(["WChaRteMax", "WDisChaRteMax"]),
        st.one_of(st.none(), st.floats(0, 2e5)),
    ),
    st.tuples(st.just("bat"), st.just("State"), st.sampled_from([1, 2, 3, 3, 3, 3, 3, 4, 99])),
    st.tuples(st.just("bat"), st.just("Evt1"), st.sampled_from([0, 0, 0, 1 << 2, 1 << 9])),
    st.tuples(st.just("inv"), st.just("WMaxRtg"), st.one_of(st.none(), st.floats(0, 2e5))),
    st.tuples(
        st.just("status"),
        st.sampled_from(["battery", "inverter"]),
        st.sampled_from(["online", "online", "offline"]),
    ),
)
time_step = st.tuples(st.just("time"), st.floats(0.05, 40.0), st.none())
failure = st.tuples(
    st.just("fail"), st.sampled_from(["WSet", "SetOp", "WSetEna", "none"]), st.none()
)
steps = st.lists(
    st.one_of(command, command, telemetry, telemetry, time_step, failure), min_size=4, max_size=30
)


class Model:
    """The test's own view of the telemetry it fed, for an independent limit computation."""

    def __init__(self) -> None:
        self.bat: dict[str, Any] = {
            "V": 800.0,
            "AChaMax": 100.0,
            "ADisChaMax": 120.0,
            "WChaRteMax": 100000.0,
            "WDisChaRteMax": 100000.0,
        }
        self.wmaxrtg: float | None = INVERTER_RATING

    def bounds(self) -> tuple[float, float]:
        b = self.bat
        v = b.get("V")

        def side(a_key: str, w_key: str, cfg: float | None) -> float:
            battery = []
            if v is not None and b.get(a_key) is not None:
                battery.append(v * b[a_key])
            if b.get(w_key) is not None:
                battery.append(b[w_key])
            if not battery:
                return 0.0
            others = [x for x in (self.wmaxrtg, cfg) if x is not None]
            return min(battery + others)

        return (
            side("AChaMax", "WChaRteMax", MAX_CHARGE_CFG),
            side("ADisChaMax", "WDisChaRteMax", None),
        )


def _install_checks(rig: Rig, model: Model, violations: list[str]) -> None:
    dev: FakeDevices = rig.dev
    original = dev.write

    async def checked(device: str, mdl: str, point: str, value: Any) -> dict[str, Any]:
        if point == "WSet":
            internal = float(value)  # charge_sign -1: the device value is the internal one
            cmax, dmax = model.bounds()
            if not (-cmax - 1e-6 <= internal <= dmax + 1e-6):
                violations.append(f"WSet {value} outside [-{cmax}, {dmax}] in {rig.ctl.state}")
            if internal != 0 and rig.ctl.state not in ACTIVE:
                violations.append(f"WSet {value} written in state {rig.ctl.state}")
        return await original(device, mdl, point, value)

    dev.write = checked  # type: ignore[method-assign]


async def _apply(rig: Rig, model: Model, step: tuple[Any, Any, Any]) -> None:
    kind, a, b = step
    if kind == "cmd":
        reply = await rig.cmd(a, b)
        assert reply["ok"] is True or reply["error"]["code"] in CODES, reply
        assert "state" in reply
    elif kind == "bat":
        if a in model.bat or a in ("AChaMax", "ADisChaMax", "V", "WChaRteMax", "WDisChaRteMax"):
            model.bat[a] = b
        rig.bat(a, b)
    elif kind == "inv":
        model.wmaxrtg = b
        rig.feed("inverter", "702", a, b)
    elif kind == "status":
        rig.ctl.on_status(a, b)
    elif kind == "time":
        await rig.advance(a, step=0.5)
    elif kind == "fail":
        rig.dev.readback.clear()
        if a != "none":
            dev = "battery" if a == "SetOp" else "inverter"
            mdl = "802" if a == "SetOp" else "704"
            rig.dev.readback[(dev, mdl, a)] = False
    await rig.settle()


async def _way_out(rig: Rig) -> None:
    """stop, then remove every cause and reset: always back to stopped."""
    rig.dev.readback.clear()
    reply = await rig.cmd("stop")
    assert reply["ok"] is True, reply
    assert rig.ctl.state in ("stopped", "fault"), rig.ctl.state
    if rig.ctl.state == "fault":
        rig.bat("Evt1", 0)
        rig.bat("State", 1)
        rig.ctl.on_status("battery", "online")
        rig.ctl.on_status("inverter", "online")
        reply = await rig.cmd("reset")
        assert reply["ok"] is True, reply
    assert rig.ctl.state == "stopped"


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(steps=steps, begin_holding=st.sampled_from([True, True, True, False]))
def test_random_sequences_respect_limits_and_always_have_a_way_out(
    steps: list[tuple[Any, Any, Any]], begin_holding: bool
) -> None:
    async def main() -> None:
        rig = make_rig(max_charge_w=MAX_CHARGE_CFG)
        rig.dev.echo = False
        model = Model()
        violations: list[str] = []
        _install_checks(rig, model, violations)
        if begin_holding:
            await rig.to_holding()
        for step in steps:
            await _apply(rig, model, step)
            assert rig.ctl.state in STATES
            assert not violations, violations
            if rig.ctl.state in ACTIVE:  # a lowered limit is applied at once, not later
                cmax, dmax = model.bounds()
                assert -cmax - 1e-6 <= rig.ctl.applied_w <= dmax + 1e-6, (
                    rig.ctl.applied_w,
                    cmax,
                    dmax,
                )
        await _way_out(rig)
        assert not violations, violations
        await rig.ctl.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_every_state_reaches_stopped_in_the_machine() -> None:
    """Static check of the transition table: from each state `stopped` is reachable."""
    m = BessMachine()
    edges: dict[str, set[str]] = {}
    for state in m.states:
        edges[state.id] = {t.target.id for t in state.transitions if t.target is not None}
    for start in edges:
        seen, todo = {start}, [start]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        assert "stopped" in seen, start
        assert start == "fault" or "fault" in seen  # every state can trip
