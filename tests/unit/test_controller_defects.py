"""B1-B9 (field notes section 1): each test fails on the original's behaviour."""

from __future__ import annotations

import asyncio

import pytest

from edge.controller.config import ControllerSettings
from edge.controller.faults import EVT1_BITS, EVT1_TRIP_BITS
from tests.unit.controller_fakes import make_rig, run, settings

STOP_TAIL = ["704/WSet=0", "704/WSetEna=0", "802/SetOp=2"]


def _stop_sequence_ran(seq: list[str]) -> bool:
    """power 0, inverter off, open contactors -- in that order, after the trip."""
    it = iter(seq)
    return all(any(x == want for x in it) for want in STOP_TAIL)


# -- B1: no SoC ever received (or SoC gone stale) stops the system ------------------------
def test_b1_no_soc_ever_received_stops() -> None:
    async def main() -> None:
        r = make_rig(battery={"SoC": None})
        await r.to_holding()
        await r.advance(29.0)
        await r.settle()
        assert r.ctl.state == "holding"
        await r.advance(2.0)
        await r.settle()
        assert r.ctl.state == "fault"
        assert "soc_stale" in r.fault_codes()
        assert _stop_sequence_ran(r.dev.sequence())

    run(main())


def test_b1_soc_stops_arriving_stops_and_fresh_soc_keeps_running() -> None:
    async def main() -> None:
        r = make_rig()
        await r.to_holding()
        await r.advance(60.0, step=0.5, soc=50.0)  # fresh SoC: keeps running
        await r.settle()
        assert r.ctl.state == "holding"
        await r.advance(31.0, step=0.5)  # SoC no longer arrives
        await r.settle()
        assert r.ctl.state == "fault" and r.fault_codes() == ["soc_stale"]
        assert "soc_monitor_max_time" in r.ctl.faults[0].detail

    run(main())


# -- B2: recovery always ends, including at entry -----------------------------------------
def test_b2_recover_soc_when_already_above_level_ends_in_holding() -> None:
    async def main() -> None:
        r = make_rig(battery={"SoC": 50.0})
        await r.to_holding()
        reply = await r.cmd("recover_soc")
        assert reply["ok"] and reply["state"] == "holding"
        assert ("holding", "soc_recovery") in r.transitions()
        assert ("soc_recovery", "holding") in r.transitions()

    run(main())


def test_b2_recover_soc_from_stopped_with_high_soc_ends_in_holding() -> None:
    async def main() -> None:
        r = make_rig(battery={"SoC": 60.0})
        reply = await r.cmd("recover_soc")
        assert reply["ok"]
        r.bat("State", 3)
        await r.settle()
        assert r.ctl.state == "holding"

    run(main())


def test_b2_automatic_recovery_ends_at_recovered_level() -> None:
    async def main() -> None:
        r = make_rig(battery={"SoC": 30.0}, soc_low_recovery_charge_command=2000)
        await r.to_holding()
        r.bat("SoC", 10.0)
        await r.settle()
        assert r.ctl.state == "soc_recovery"
        assert r.dev.of("WSet")[-1] == -2000
        await r.advance(1.0, soc=19.9)
        await r.settle()
        assert r.ctl.state == "soc_recovery"
        await r.advance(1.0, soc=20.0)
        await r.settle()
        assert r.ctl.state == "holding"
        assert r.dev.of("WSet")[-1] == 0

    run(main())


# -- B3: every wait is bounded --------------------------------------------------------------
def test_b3_connect_wait_times_out_and_stops() -> None:
    async def main() -> None:
        r = make_rig(connect_timeout_s=5)
        await r.cmd("start")
        assert r.ctl.state == "connecting"
        await r.advance(4.0, soc=50)
        await r.settle()
        assert r.ctl.state == "connecting"
        await r.advance(2.0, soc=50)
        await r.settle()
        assert r.ctl.state == "fault"
        assert r.fault_codes() == ["connect_timeout"]
        assert "State" in r.ctl.faults[0].detail and "5 s" in r.ctl.faults[0].detail
        assert r.dev.sequence()[-1] == "802/SetOp=2"

    run(main())


def test_b3_a_write_without_reply_is_a_fault_not_a_hang() -> None:
    async def main() -> None:
        r = make_rig()
        await r.to_holding()
        r.dev.silent.add(("inverter", "704", "WSet"))
        reply = await r.cmd("charge", {"power_w": 1000})
        assert reply["ok"] is False and reply["error"]["code"] == "fault_active"
        assert r.ctl.state == "fault"
        assert "timeout" in r.ctl.faults[0].detail
        # the rest of the stop sequence still reached the devices
        assert r.dev.sequence()[-1] == "802/SetOp=2"

    run(main())


# -- B4: trip-worthy Evt1 alarm bits fault the system --------------------------------------
@pytest.mark.parametrize("bit", sorted(EVT1_BITS))
def test_b4_evt1_bits(bit: int) -> None:
    async def main() -> None:
        r = make_rig()
        await r.to_holding()
        await r.cmd("charge", {"power_w": 1000})
        r.bat("Evt1", 1 << bit)
        await r.settle()
        if bit in EVT1_TRIP_BITS:
            assert r.ctl.state == "fault"
            assert r.ctl.faults[0].code == "battery_alarm"
            assert EVT1_BITS[bit] in r.ctl.faults[0].detail
            assert _stop_sequence_ran(r.dev.sequence())
            ev = [e for e in r.events if e["kind"] == "fault"]
            assert ev and EVT1_BITS[bit] in ev[0]["detail"]
        else:
            assert r.ctl.state == "charging"

    run(main())


def test_b4_named_trip_bits_are_the_dangerous_ones() -> None:
    names = {EVT1_BITS[b] for b in EVT1_TRIP_BITS}
    for must in (
        "OVER_VOLT_ALARM",
        "UNDER_VOLT_ALARM",
        "OVER_TEMP_ALARM",
        "UNDER_TEMP_ALARM",
        "CONTACTOR_ERROR",
        "GROUND_FAULT",
        "OVER_CHARGE_CURRENT_ALARM",
        "OVER_DISCHARGE_CURRENT_ALARM",
    ):
        assert must in names
    assert not any(n.endswith("_WARNING") for n in names)


# -- B5: every write confirmed by read-back, 0 included -----------------------------------
@pytest.mark.parametrize("readback", [False, 1, None, "0"])
def test_b5_failed_write_of_zero_is_a_fault(readback: object) -> None:
    async def main() -> None:
        r = make_rig()
        await r.to_holding()
        await r.cmd("charge", {"power_w": 1000})
        r.dev.readback[("inverter", "704", "WSet")] = readback
        reply = await r.cmd("hold")
        assert reply["ok"] is False and reply["error"]["code"] == "fault_active"
        assert r.ctl.state == "fault"
        assert r.ctl.faults[0].code == "write_failed"
        assert "WSet" in r.ctl.faults[0].detail
        # latched: reset refused while... the cause (a bad write) is gone, so reset clears it
        r.dev.readback.clear()
        assert (await r.cmd("charge", {"power_w": 1}))["error"]["code"] == "fault_active"
        assert (await r.cmd("reset"))["ok"] is True
        assert r.ctl.state == "stopped"

    run(main())


def test_b5_refused_write_is_a_fault() -> None:
    async def main() -> None:
        r = make_rig()
        r.dev.refuse[("battery", "802", "SetOp")] = "device_error"
        reply = await r.cmd("start")
        assert r.ctl.state == "fault", reply
        assert "device_error" in r.ctl.faults[0].detail

    run(main())


# -- B6: one unit everywhere (W) ----------------------------------------------------------
def test_b6_rhombus_limits_compared_in_watts() -> None:
    async def main() -> None:
        # battery 800 V x 100 A = 80 kW; inverter 125 (kW) -> limit 80 kW, command -80 (kW)
        r = make_rig("rhombus_res125", battery={"AChaMax": 100.0, "WChaRteMax": None})
        await r.to_holding()
        reply = await r.cmd("charge", {"power_w": 200000})
        assert reply["setpoint"] == {"requested_w": 200000, "applied_w": 80000}
        assert r.dev.of("MaxPowerCommand")[-1] == -80.0
        # battery 800 V x 200 A = 160 kW; inverter 125 kW binds
        r.bat("AChaMax", 200.0)
        await r.settle()
        await r.advance(0.2, soc=50)
        await r.settle()
        assert r.ctl.limits.charge_w == 125000
        assert r.ctl.limits.charge_source == "inverter rating"
        assert r.dev.of("MaxPowerCommand")[-1] == -125.0

    run(main())


# -- B7: the heartbeat runs whenever the inverter is energised; losing it stops -----------
def test_b7_heartbeat_reset_at_limit_from_start() -> None:
    async def main() -> None:
        r = make_rig("rhombus_res125")
        await r.cmd("start")
        assert r.ctl.state == "connecting"  # energised, not yet holding
        r.feed("inverter", "res125", "Heartbeat", 751)
        await r.settle()
        assert r.dev.of("Heartbeat") == []
        r.feed("inverter", "res125", "Heartbeat", 750)
        await r.settle()
        assert r.dev.of("Heartbeat") == [931]

    run(main())


def test_b7_heartbeat_lost_stops() -> None:
    async def main() -> None:
        r = make_rig("rhombus_res125")
        await r.to_holding()
        await r.advance(59.0, step=0.5, soc=50)
        await r.settle()
        assert r.ctl.state == "holding"
        await r.advance(2.0, step=0.5, soc=50)
        await r.settle()
        assert r.ctl.state == "fault"
        assert "heartbeat_lost" in r.fault_codes()
        assert r.dev.of("OpMode")[-1] == 0  # inverter off

    run(main())


def test_b7_heartbeat_at_zero_stops() -> None:
    async def main() -> None:
        r = make_rig("rhombus_res125")
        await r.to_holding()
        r.feed("inverter", "res125", "Heartbeat", 0)
        await r.advance(1.0, soc=50)
        await r.settle()
        assert r.ctl.state == "fault" and "heartbeat_lost" in r.fault_codes()

    run(main())


def test_b7_heartbeat_not_written_when_stopped() -> None:
    async def main() -> None:
        r = make_rig("rhombus_res125")
        r.feed("inverter", "res125", "Heartbeat", 100)
        await r.advance(60.0, step=1.0)
        await r.settle()
        assert r.dev.writes == [] and r.ctl.state == "stopped"

    run(main())


# -- B8: documented values are the real ones ----------------------------------------------
def test_b8_documented_defaults() -> None:
    s = settings()
    assert isinstance(s, ControllerSettings)
    documented = {
        "tz": "UTC",
        "actuator_vip": "platform.actuator",
        "soc_monitor_max_time": 30,
        "soc_high_limit": 90,
        "soc_low_limit": 10,
        "soc_recovered_level": 20,
        "soc_monitor_interval": 1,
        "soc_recovery_check_interval": 1,
        "soc_low_recovery_charge_command": 10,
        "system_fault_check_interval": 1,
        "wait_connecting_interval": 1,
        "strict_power_sign": True,
        "user_command_mode": "POWER",
        "system_state_publish_topic": "record/BESS/SystemState",
        "inverter_heartbeat_check_interval": 50,
        "charge_sign": -1,
        "inverter_heartbeat_warning_time": 60,
        "initial_inverter_heartbeat_count": 931,
        "inverter_heartbeat_count_limit": 750,
        "security_code_value": 125,
        "max_inverter_command": 125,
        "inverter_command_mode": "POWER",
    }
    for key, value in documented.items():
        assert getattr(s, key) == value, key


def test_b8_recover_soc_power_argument_is_used() -> None:
    async def main() -> None:
        r = make_rig(battery={"SoC": 15.0})
        await r.to_holding()
        reply = await r.cmd("recover_soc", {"power_w": 3000})
        assert reply["state"] == "soc_recovery"
        assert reply["setpoint"]["applied_w"] == 3000
        assert r.dev.of("WSet")[-1] == -3000

    run(main())


def test_b8_recovery_checked_every_second() -> None:
    """soc_recovery_check_interval = 1 s: recovery ends within a second even when SoC arrives
    only through the periodic check (simulated by updating telemetry behind its back)."""

    async def main() -> None:
        r = make_rig(battery={"SoC": 15.0})
        await r.to_holding()
        await r.cmd("recover_soc")
        r.ctl.t.update("battery", "802", "SoC", 25.0)  # no on_point hook
        await r.advance(1.05)
        await r.settle()
        assert r.ctl.state == "holding"

    run(main())


# -- B9: one controller loop --------------------------------------------------------------
def test_b9_one_loop_per_service() -> None:
    from edge.config.site import parse_site
    from edge.controller.service import make_services
    from edge.controller.shell import ControllerService

    site = parse_site({"site": {"id": "s1"}, "controller": {}})
    services = make_services(site)
    assert len(services) == 1 and isinstance(services[0], ControllerService)
    assert make_services(parse_site({"site": {"id": "s1"}})) == []

    async def main() -> None:
        svc = services[0]
        svc._running = True  # as if run() were in progress
        with pytest.raises(RuntimeError, match="one loop"):
            await svc.run(asyncio.Event())

    run(main())
