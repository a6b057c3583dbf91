"""End to end over a real Mosquitto: controller + real Modbus adapters + the SunSpec simulator.

start -> charge -> SoC high limit -> hold -> discharge -> low SoC -> recovery -> hold -> stop,
and each kind of fault injected in the simulator, seeing the stop sequence reach the devices.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.broker import Broker
from tests.integration.controller_site import ControllerSite

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _run(coro: Any) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))


def test_full_cycle_sunspec_704(broker: Broker) -> None:
    async def main() -> None:
        async with ControllerSite(
            broker,
            "sunspec_704",
            time_scale=20,
            # the device's revert timer runs on simulated time: 600 s x 1/20 = 30 s real
            controller={"soc_low_recovery_charge_command": 5000, "lease_s": 600},
        ) as site:
            r = await site.cmd("start")
            assert r["ok"], r
            await site.wait_state("holding", 5)
            assert site.value("battery", 802, "State") == 3
            assert site.value("inverter", 704, "WSetEna") == 1
            r = await site.cmd("charge", {"power_w": 20000})
            assert r == {
                "ok": True,
                "state": "charging",
                "setpoint": {"requested_w": 20000, "applied_w": 20000},
            }
            assert site.value("inverter", 704, "WSet") == -20000
            await site.wait(
                lambda: site.value("inverter", 701, "W") == -20000, 5, "inverter at -20 kW"
            )
            # SoC high limit reached by charging (the simulator integrates power, x20 time)
            site.sim.set_value("battery", 802, "SoC", 89.8)
            await site.wait_state("holding", 10)
            assert "soc_high_limit" in site.ctl.reason
            await site.wait(lambda: site.value("inverter", 704, "WSet") == 0, 3, "WSet 0")
            r = await site.cmd("discharge", {"power_w": 20000})
            assert r["state"] == "discharging" and site.value("inverter", 704, "WSet") == 20000
            site.sim.set_value("battery", 802, "SoC", 10.2)
            await site.wait_state("soc_recovery", 10)
            await site.wait(
                lambda: site.value("inverter", 704, "WSet") == -5000, 3, "recovery charge"
            )
            r = await site.cmd("discharge", {"power_w": 1000})
            assert r["ok"] is False and r["error"]["code"] == "not_allowed_in_state"
            site.sim.set_value("battery", 802, "SoC", 19.9)
            await site.wait_state("holding", 15)
            await site.wait(lambda: site.value("inverter", 704, "WSet") == 0, 3, "WSet 0")
            r = await site.cmd("stop")
            assert r["ok"] and r["state"] == "stopped", r
            assert site.value("battery", 802, "SetOp") == 2
            assert site.value("battery", 802, "State") == 1
            assert site.value("inverter", 704, "WSetEna") == 0

    _run(main())


@pytest.mark.parametrize("profile", ["sunspec_123", "rhombus_res125"])
def test_other_profiles_charge_and_stop(broker: Broker, profile: str) -> None:
    async def main() -> None:
        async with ControllerSite(broker, profile, time_scale=1) as site:
            r = await site.cmd("start")
            assert r["ok"], r
            await site.wait_state("holding", 5)
            r = await site.cmd("charge", {"power_w": 20000})
            assert r["state"] == "charging" and r["setpoint"]["applied_w"] == 20000, r
            await site.wait(
                lambda: site.sim.device("inverter").physics.power_w == -20000, 5, "-20 kW"
            )
            if profile == "rhombus_res125":
                # B7 on the real path: the heartbeat countdown is written back while energised
                await site.wait(lambda: any(True for _ in [0]), 0.1)
                hb0 = site.value("inverter", "res125", "Heartbeat")
                assert hb0 is not None and hb0 > 750
            r = await site.cmd("stop")
            assert r["state"] == "stopped", r
            assert site.sim.device("inverter").physics.power_w == 0
            assert site.value("battery", 802, "SetOp") == 2

    _run(main())


def _safe_704(site: ControllerSite, check_battery: bool = True) -> bool:
    ok = site.value("inverter", 704, "WSet") == 0 and site.value("inverter", 704, "WSetEna") == 0
    if check_battery:
        ok = ok and site.value("battery", 802, "SetOp") == 2
    return ok


@pytest.mark.parametrize(
    ("device", "action", "body", "code"),
    [
        ("battery", "alarm", {"bit": 1, "on": True}, "battery_alarm"),
        ("battery", "alarm", {"bit": 22, "on": True}, "battery_alarm"),
        ("battery", "state", {"value": 99}, "battery_state_fault"),
        ("inverter", "inverter_fault", {"point": "Alrm", "value": 1}, "inverter_alarm"),
        ("inverter", "inverter_fault", {"point": "St", "value": 0}, "inverter_fault"),
        ("inverter", "inverter_fault", {"point": "InvSt", "value": 6}, "inverter_fault"),
        ("battery", "freeze", {"on": True}, "device_offline"),
    ],
)
def test_injected_fault_reaches_safe_state(
    broker: Broker, device: str, action: str, body: dict[str, Any], code: str
) -> None:
    async def main() -> None:
        async with ControllerSite(broker, "sunspec_704") as site:
            r = await site.cmd("start")
            assert r["ok"], r
            await site.wait_state("holding", 5)
            await site.cmd("discharge", {"power_w": 10000})
            await site.wait(lambda: site.value("inverter", 701, "W") == 10000, 5, "exporting")
            site.sim.inject(device, action, body)
            await site.wait_state("fault", 5)
            assert code in [f.code for f in site.ctl.faults], site.ctl.faults
            frozen = action == "freeze"
            await site.wait(lambda: _safe_704(site, check_battery=not frozen), 5, "safe state")
            assert site.sim.device("inverter").physics.power_w == 0 or frozen
            if body.get("point") != "St":  # St OFF is a fault only while in power mode
                r = await site.cmd("reset")
                assert r["ok"] is False and r["error"]["code"] == "fault_active"
            site.sim.inject(device, "clear", {})
            if action == "state":
                site.sim.inject(device, "state", {"value": None})
            await asyncio.sleep(0.5)
            await site.wait(lambda: site.ctl._fault_causes() == [], 5, "cause gone")
            r = await site.cmd("reset")
            assert r["ok"] is True and r["state"] == "stopped", r

    _run(main())


@pytest.mark.parametrize(
    ("profile", "point", "value", "code", "off"),
    [
        ("rhombus_res125", "CIUFaultSummary", 1 << 5, "inverter_fault", ("res125", "OpMode", 0)),
        ("rhombus_res125", "MIUF2Summary", 1, "inverter_fault", ("res125", "OpMode", 0)),
        ("sunspec_123", "Evt1", 1 << 7, "inverter_alarm", (123, "Conn", 0)),
        ("sunspec_123", "St", 7, "inverter_fault", (123, "Conn", 0)),
    ],
)
def test_inverter_faults_of_other_profiles(
    broker: Broker, profile: str, point: str, value: int, code: str, off: tuple[Any, str, int]
) -> None:
    async def main() -> None:
        async with ControllerSite(broker, profile) as site:
            r = await site.cmd("start")
            assert r["ok"], r
            await site.wait_state("holding", 5)
            await site.cmd("charge", {"power_w": 10000})
            site.sim.inject("inverter", "inverter_fault", {"point": point, "value": value})
            await site.wait_state("fault", 5)
            assert code in [f.code for f in site.ctl.faults], site.ctl.faults
            model, opoint, ovalue = off
            await site.wait(lambda: site.value("inverter", model, opoint) == ovalue, 5, "off")
            await site.wait(lambda: site.value("battery", 802, "SetOp") == 2, 5, "contactors")

    _run(main())


def test_heartbeat_lost_on_rhombus_stops(broker: Broker) -> None:
    async def main() -> None:
        async with ControllerSite(
            broker, "rhombus_res125", controller={"inverter_heartbeat_warning_time": 1.5}
        ) as site:
            r = await site.cmd("start")
            assert r["ok"], r
            await site.wait_state("holding", 5)
            await asyncio.sleep(2.0)  # the heartbeat keeps it running past the warning time
            assert site.ctl.state == "holding"
            site.sim.inject("inverter", "stale", {"on": True})  # countdown stops changing
            await site.wait_state("fault", 6)
            assert "heartbeat_lost" in [f.code for f in site.ctl.faults]
            await site.wait(
                lambda: site.value("inverter", "res125", "OpMode") == 0, 3, "inverter off"
            )

    _run(main())


def test_restart_does_not_resume_and_reports_what_it_found(
    broker: Broker, probe_factory: Any
) -> None:
    """Issue 4 item 9: a controller restarted while the site exports comes up safe."""

    async def main() -> None:
        from tests.integration.controller_site import T

        probe = probe_factory(T.controller_events)
        async with ControllerSite(broker, "sunspec_704") as site:
            r = await site.cmd("start")
            assert r["ok"], r
            await site.wait_state("holding", 5)
            await site.cmd("discharge", {"power_w": 15000})
            await site.wait(lambda: site.value("inverter", 701, "W") == 15000, 5, "exporting")
            probe.clear()  # the first controller's own boot report is not the one we want
            await site.restart_controller(on_restart="stop", restart_settle_s=0.5)
            assert site.ctl.state in ("stopped", "stopping")
            m = await asyncio.to_thread(
                probe.wait_for, T.controller_events, lambda m: m.json()["kind"] == "restart", 5
            )
            found = m.json()["found"]
            assert found["battery_connected"] is True and found["inverter_exporting"] is True, found
            await site.wait(lambda: site.value("battery", 802, "SetOp") == 2, 5, "contactors open")
            assert site.value("inverter", 704, "WSetEna") == 0
            assert site.sim.device("inverter").physics.power_w == 0
            await site.wait_state("stopped", 5)
            assert "restart: found devices energised" in site.ctl.reason or site.ctl.reason == (
                "stop sequence complete"
            )

    _run(main())
