"""Every row of the original's transition table (field notes section 1), state x command.

Original: STOP and recovery accepted from any state; charge/discharge/hold only once connected;
START only from STOPPED. Ours adds `fault` (latched: only stop/reset/get_state) and `reset`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.unit.controller_fakes import Rig, make_rig, run

STATES = [
    "stopped",
    "starting",
    "connecting",
    "holding",
    "charging",
    "discharging",
    "soc_recovery",
    "stopping",
    "fault",
]
OK, NA, FA = "ok", "not_allowed_in_state", "fault_active"
# expected[command][state]
TABLE: dict[str, dict[str, str]] = {
    "start": {s: (OK if s == "stopped" else FA if s == "fault" else NA) for s in STATES},
    "stop": {s: OK for s in STATES},
    "hold": {
        s: (OK if s in ("holding", "charging", "discharging") else FA if s == "fault" else NA)
        for s in STATES
    },
    "charge": {
        s: (
            OK
            if s in ("holding", "charging", "discharging", "soc_recovery")
            else FA
            if s == "fault"
            else NA
        )
        for s in STATES
    },
    "discharge": {
        s: (OK if s in ("holding", "charging", "discharging") else FA if s == "fault" else NA)
        for s in STATES
    },
    "recover_soc": {s: (NA if s == "stopping" else FA if s == "fault" else OK) for s in STATES},
    "reset": {s: (OK if s == "fault" else NA) for s in STATES},
    "get_state": {s: OK for s in STATES},
}
BODIES: dict[str, dict[str, Any]] = {"charge": {"power_w": 1000}, "discharge": {"power_w": 1000}}
# The state each accepted command leads to (from a state where it is allowed).
RESULT = {
    "hold": "holding",
    "charge": "charging",
    "discharge": "discharging",
    "recover_soc": "soc_recovery",
    "stop": "stopped",
}


async def enter(state: str) -> Rig:
    """A rig in `state`; for transitional states the devices' writes are held by a gate."""
    r = make_rig(battery={"SoC": 15.0})  # between soc_low_limit 10 and soc_recovered_level 20
    if state == "stopped":
        return r
    if state == "starting":
        r.dev.gate = asyncio.Event()
        asyncio.get_running_loop().create_task(r.ctl.command("start", {}))
        await asyncio.sleep(0.01)
        assert r.ctl.state == "starting"
        return r
    if state == "connecting":
        await r.cmd("start")
        assert r.ctl.state == "connecting"
        return r
    await r.to_holding()
    if state in ("charging", "discharging"):
        await r.cmd("charge" if state == "charging" else "discharge", {"power_w": 1000})
    elif state == "soc_recovery":
        await r.cmd("recover_soc")
    elif state == "stopping":
        r.dev.gate = asyncio.Event()
        asyncio.get_running_loop().create_task(r.ctl.command("stop", {}))
        await asyncio.sleep(0.01)
    elif state == "fault":
        r.bat("Evt1", 1 << 1)  # OVER_TEMP_ALARM
        await r.settle()
        r.bat("Evt1", 0)  # cause gone: reset may clear it
    assert r.ctl.state == state, (r.ctl.state, r.ctl.reason)
    return r


async def issue(r: Rig, command: str) -> dict[str, Any]:
    task = asyncio.get_running_loop().create_task(r.cmd(command, BODIES.get(command)))
    await asyncio.sleep(0.01)
    if r.dev.gate is not None:
        r.dev.gate.set()
    return await asyncio.wait_for(task, 5)


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("command", list(TABLE))
def test_transition_table(state: str, command: str) -> None:
    async def main() -> None:
        r = await enter(state)
        before = r.ctl.state
        reply = await issue(r, command)
        expected = TABLE[command][state]
        if expected == OK:
            assert reply["ok"] is True, reply
        else:
            assert reply["ok"] is False, reply
            assert reply["error"]["code"] == expected, reply
            assert command in reply["error"]["message"]
            if expected == NA:
                assert before in reply["error"]["message"]
            assert r.ctl.state == before or before in ("starting", "stopping")
            refused = [e for e in r.events if e["kind"] == "refused"]
            assert refused and refused[-1]["command"] == command
        await r.ctl.close()

    run(main())


@pytest.mark.parametrize(
    ("state", "command"),
    [(s, c) for c in RESULT for s in STATES if TABLE[c][s] == OK and s not in ("fault",)],
)
def test_accepted_commands_reach_their_state(state: str, command: str) -> None:
    async def main() -> None:
        r = await enter(state)
        await issue(r, command)
        await r.settle()
        want = RESULT[command]
        if command == "recover_soc" and state in ("stopped", "starting", "connecting"):
            # recovery follows the start sequence once the battery reports CONNECTED
            r.bat("State", 3)
            await r.settle()
        if command == "charge" and state == "soc_recovery":
            want = "charging"
        assert r.ctl.state == want, (state, command, r.ctl.state, r.ctl.reason)
        await r.ctl.close()

    run(main())


def test_charge_above_high_limit_becomes_hold() -> None:
    """Original rule: charge above soc_high_limit becomes hold (and says why)."""

    async def main() -> None:
        r = make_rig(battery={"SoC": 95.0})
        await r.to_holding()
        reply = await r.cmd("charge", {"power_w": 5000})
        assert reply["ok"] and reply["state"] == "holding"
        assert reply["setpoint"]["applied_w"] == 0
        assert "soc_high_limit" in r.ctl.reason
        assert all(v == 0 for v in r.dev.of("WSet"))

    run(main())


def test_discharge_below_low_limit_becomes_hold_then_recovery() -> None:
    async def main() -> None:
        r = make_rig(battery={"SoC": 9.0})
        r.bat("SoC", 9.0)
        await r.cmd("start")
        r.bat("State", 3)
        await r.settle()
        # holding at SoC <= low limit and not charging: recovery at once
        assert r.ctl.state == "soc_recovery"
        reply = await r.cmd("discharge", {"power_w": 5000})
        assert reply["ok"] is False and reply["error"]["code"] == "not_allowed_in_state"
        assert all(v <= 0 for v in r.dev.of("WSet"))

    run(main())
