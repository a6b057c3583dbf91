"""Controller behaviour beyond the transition table: sequences per profile, faults, reset,
setpoint clamping/ramp/lease, superseding and pre-emption, restart, command validation."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.unit.controller_fakes import make_rig, run


def test_start_and_stop_sequence_order_sunspec_704() -> None:
    async def main() -> None:
        r = make_rig(lease_s=30)
        await r.to_holding()
        assert r.dev.sequence() == [
            "802/AlmRst=1",
            "802/SetOp=1",
            "704/WSetMod=1",
            "704/WSetRvrtTms=30",
            "704/WSet=0",
            "704/WSetEna=1",
            "704/WSet=0",
        ]
        n = len(r.dev.writes)
        await r.cmd("stop")
        assert r.dev.sequence()[n:] == ["704/WSet=0", "704/WSet=0", "704/WSetEna=0", "802/SetOp=2"]
        assert r.ctl.state == "stopped"

    run(main())


def test_start_and_stop_sequence_order_rhombus() -> None:
    async def main() -> None:
        r = make_rig("rhombus_res125")
        await r.to_holding()
        assert r.dev.sequence() == [
            "802/AlmRst=1",
            "res125/OpMode=61440",
            "res125/SecurityCode=125",
            "802/SetOp=1",
            "res125/Heartbeat=931",
            "res125/MaxPowerCommand=0",
            "res125/OpMode=1",
            "res125/MaxPowerCommand=0.0",
        ]
        await r.cmd("discharge", {"power_w": 20000, "pf": 0.95})
        assert r.dev.of("PowerFactorOffset") == [0.05]
        assert r.dev.of("MaxPowerCommand")[-1] == 20.0  # kW, discharge positive (charge_sign -1)
        n = len(r.dev.writes)
        await r.cmd("stop")
        assert r.dev.sequence()[n:] == [
            "res125/MaxPowerCommand=0.0",
            "res125/OpMode=0",
            "802/SetOp=2",
        ]

    run(main())


def test_legacy_123_124_profile_setpoints() -> None:
    async def main() -> None:
        r = make_rig("sunspec_123")
        await r.to_holding()
        assert r.dev.sequence()[2:6] == [
            "123/Conn=1",
            "124/InOutWRte_RvrtTms=30",
            "124/InWRte=0",
            "124/OutWRte=0",
        ]
        n = len(r.dev.writes)
        await r.cmd("charge", {"power_w": 45000})  # 50 % of WChaMax 90 kW
        assert r.dev.sequence()[n:] == ["124/OutWRte=0", "124/InWRte=50.0", "124/StorCtl_Mod=1"]
        n = len(r.dev.writes)
        await r.cmd("discharge", {"power_w": 9000})
        assert r.dev.sequence()[n:] == ["124/InWRte=0", "124/OutWRte=10.0", "124/StorCtl_Mod=2"]
        n = len(r.dev.writes)
        await r.cmd("stop")
        assert r.dev.sequence()[n:] == [
            "124/OutWRte=0",
            "124/InWRte=0",
            "124/StorCtl_Mod=0",
            "123/Conn=0",
            "802/SetOp=2",
        ]

    run(main())


def test_charge_sign_plus_one() -> None:
    async def main() -> None:
        r = make_rig(charge_sign=1)
        await r.to_holding()
        await r.cmd("charge", {"power_w": 5000})
        assert r.dev.of("WSet")[-1] == 5000
        await r.cmd("discharge", {"power_w": 4000})
        assert r.dev.of("WSet")[-1] == -4000

    run(main())


@pytest.mark.parametrize(
    ("profile", "model", "point", "value", "code"),
    [
        ("sunspec_704", "802", "State", 99, "battery_state_fault"),
        ("sunspec_704", "701", "Alrm", 1 << 7, "inverter_alarm"),
        ("sunspec_704", "701", "InvSt", 6, "inverter_fault"),
        ("sunspec_704", "701", "St", 0, "inverter_fault"),
        ("sunspec_123", "103", "St", 7, "inverter_fault"),
        ("sunspec_123", "103", "Evt1", 1, "inverter_alarm"),
        ("rhombus_res125", "res125", "CIUFaultSummary", 1 << 5, "inverter_fault"),
        ("rhombus_res125", "res125", "MIUF3Summary", 1, "inverter_fault"),
        ("rhombus_res125", "res125", "GridOffStandaloneOn", 1, "islanding"),
        ("rhombus_res125", "res125", "AutoTransition", 1, "islanding"),
    ],
)
def test_each_fault_runs_stop_sequence_is_named_and_latched(
    profile: str, model: str, point: str, value: int, code: str
) -> None:
    async def main() -> None:
        r = make_rig(profile)
        await r.to_holding()
        await r.cmd("discharge", {"power_w": 5000})
        n = len(r.dev.writes)
        device = "battery" if model == "802" else "inverter"
        r.feed(device, model, point, value)
        await r.settle()
        assert r.ctl.state == "fault"
        assert r.ctl.faults[0].code == code
        snap = r.ctl.snapshot()
        assert snap["faults"][0]["code"] == code and snap["state"] == "fault"
        assert any(e["kind"] == "fault" and e["code"] == code for e in r.events)
        tail = r.dev.sequence()[n:]
        assert tail[-1] == "802/SetOp=2"
        assert r.dev.writes[n].point in ("WSet", "MaxPowerCommand", "OutWRte")
        assert r.dev.writes[n].value == 0
        # latched: refused while the cause is present, cleared after
        if point != "St":  # St OFF only matters in power mode
            assert (await r.cmd("reset"))["error"]["code"] == "fault_active"
            assert (await r.cmd("start"))["error"]["code"] == "fault_active"
        r.feed(
            device, model, point, 3 if point in ("State", "InvSt") else 4 if point == "St" else 0
        )
        reply = await r.cmd("reset")
        assert reply["ok"] and r.ctl.state == "stopped" and r.ctl.faults == []

    run(main())


def test_device_offline_is_a_fault_and_blocks_start() -> None:
    async def main() -> None:
        r = make_rig()
        await r.to_holding()
        r.ctl.on_status("inverter", "offline")
        await r.settle()
        assert r.ctl.state == "fault" and r.fault_codes() == ["device_offline"]
        reply = await r.cmd("reset")
        assert reply["error"]["code"] == "fault_active" and "offline" in reply["error"]["message"]
        r.ctl.on_status("inverter", "online")
        assert (await r.cmd("reset"))["ok"]
        r.ctl.on_status("battery", "offline")
        reply = await r.cmd("start")
        assert reply["error"]["code"] == "fault_active"

    run(main())


def test_stop_preempts_start_in_progress() -> None:
    async def main() -> None:
        r = make_rig()
        r.dev.gate = asyncio.Event()
        start = asyncio.create_task(r.ctl.command("start", {}))
        await asyncio.sleep(0.01)
        assert r.ctl.state == "starting"
        stop = asyncio.create_task(r.ctl.command("stop", {}))
        await asyncio.sleep(0.01)
        assert r.ctl.state == "stopping"
        r.dev.gate.set()
        await asyncio.wait_for(asyncio.gather(start, stop), 5)
        await r.settle()
        assert r.ctl.state == "stopped"
        r.bat("State", 3)  # a late CONNECTED must not resume the start
        await r.settle()
        assert r.ctl.state == "stopped"
        assert "802/SetOp=1" not in r.dev.sequence()[r.dev.sequence().index("704/WSet=0") :]

    run(main())


def test_new_setpoint_supersedes_one_in_flight() -> None:
    async def main() -> None:
        r = make_rig()
        await r.to_holding()
        r.dev.gate = asyncio.Event()
        first = asyncio.create_task(r.ctl.command("charge", {"power_w": 5000}))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(r.ctl.command("discharge", {"power_w": 3000}))
        await asyncio.sleep(0.01)
        r.dev.gate.set()
        a, b = await asyncio.wait_for(asyncio.gather(first, second), 5)
        await r.settle()
        assert b == {"state": "discharging", "setpoint": {"requested_w": 3000, "applied_w": 3000}}
        assert a["state"] == "discharging"  # the first learns what is in force now
        assert r.ctl.applied_w == 3000
        assert r.dev.of("WSet")[-1] == 3000

    run(main())


def test_setpoint_clamped_and_reevaluated_when_limits_change() -> None:
    async def main() -> None:
        r = make_rig(max_charge_w=60000)
        await r.to_holding()
        reply = await r.cmd("charge", {"power_w": 70000})
        assert reply["setpoint"] == {"requested_w": 70000, "applied_w": 60000}
        assert r.ctl.snapshot()["limits"]["source"].startswith("charge: configured max_charge_w")
        r.bat("AChaMax", 10.0)  # 800 V x 10 A = 8 kW
        await r.settle()
        assert r.dev.of("WSet")[-1] == -8000
        assert r.ctl.limits.charge_source == "battery AChaMax*V"
        r.bat("AChaMax", 100.0)
        await r.advance(0.2, soc=50)
        await r.settle()
        assert r.dev.of("WSet")[-1] == -60000

    run(main())


def test_unknown_battery_limits_mean_zero() -> None:
    async def main() -> None:
        r = make_rig(battery={"AChaMax": None, "WChaRteMax": None})
        await r.to_holding()
        reply = await r.cmd("charge", {"power_w": 5000})
        assert reply["setpoint"]["applied_w"] == 0
        assert r.ctl.snapshot()["limits"]["charge_w"] == 0

    run(main())


def test_ramp() -> None:
    async def main() -> None:
        r = make_rig(ramp_w_per_s=1000, ramp_interval_s=1)
        await r.to_holding()
        reply = await r.cmd("charge", {"power_w": 3500})
        assert reply["setpoint"]["applied_w"] == 1000
        await r.advance(5.0, soc=50)
        await r.settle()
        assert r.dev.of("WSet")[-4:] == [-1000, -2000, -3000, -3500]
        # protective moves do not ramp
        r.bat("SoC", 95.0)
        await r.settle()
        assert r.ctl.state == "holding" and r.dev.of("WSet")[-1] == 0

    run(main())


def test_lease_refresh_before_revert_timer() -> None:
    async def main() -> None:
        r = make_rig(lease_s=30, refresh_s=10)
        await r.to_holding()
        await r.cmd("charge", {"power_w": 5000})
        n = len(r.dev.of("WSet"))
        await r.advance(35.0, step=0.5, soc=50)
        await r.settle()
        times = [w.at for w in r.dev.writes if w.point == "WSet"][n - 1 :]
        assert len(times) >= 4
        assert max(b - a for a, b in itertools.pairwise(times)) <= 10.5
        assert set(r.dev.of("WSet")[n:]) == {-5000}

    run(main())


def test_soc_high_limit_stops_charging() -> None:
    async def main() -> None:
        r = make_rig()
        await r.to_holding()
        await r.cmd("charge", {"power_w": 5000})
        r.bat("SoC", 89.9)
        await r.settle()
        assert r.ctl.state == "charging"
        r.bat("SoC", 90.0)
        await r.settle()
        assert r.ctl.state == "holding" and r.dev.of("WSet")[-1] == 0
        assert "soc_high_limit" in r.ctl.reason

    run(main())


def test_restart_found_energised_runs_stop_sequence_and_reports() -> None:
    async def main() -> None:
        r = make_rig(
            battery={"State": 3},
            inverter={("701", "W"): -5000.0, ("704", "WSet"): -5000},
            on_restart="stop",
            restart_settle_s=2,
        )
        await r.advance(1.0)
        assert r.dev.writes == []
        await r.advance(1.5)
        await r.settle()
        restart = [e for e in r.events if e["kind"] == "restart"]
        assert restart and restart[0]["found"]["battery_connected"] is True
        assert restart[0]["found"]["inverter_exporting"] is True
        assert r.ctl.state == "stopped"
        assert r.dev.sequence() == ["704/WSet=0", "704/WSet=0", "704/WSetEna=0", "802/SetOp=2"]
        assert ("stopped", "stopping") in r.transitions()
        # it did not resume charging
        assert all(v == 0 for v in r.dev.of("WSet"))

    run(main())


def test_restart_report_only() -> None:
    async def main() -> None:
        r = make_rig(battery={"State": 3}, on_restart="report", restart_settle_s=1)
        await r.advance(1.5)
        await r.settle()
        assert r.dev.writes == [] and r.ctl.state == "stopped"
        assert "battery_connected=True" in r.ctl.reason

    run(main())


@pytest.mark.parametrize(
    ("command", "body", "code", "field"),
    [
        ("charge", {}, "invalid_payload", "power_w"),
        ("charge", {"power_w": "5000"}, "invalid_payload", "power_w"),
        ("charge", {"power_w": True}, "invalid_payload", "power_w"),
        ("charge", {"power_w": -5}, "out_of_range", "power_w"),
        ("charge", {"power_w": float("nan")}, "invalid_payload", "power_w"),
        ("discharge", {"power_w": float("inf")}, "invalid_payload", "power_w"),
        ("charge", {"power_w": 2**80}, "out_of_range", "power_w"),
        ("charge", {"power_w": 10**4000}, "out_of_range", "power_w"),
        ("charge", {"power_w": -(10**4000)}, "out_of_range", "power_w"),
        ("charge", {"power_w": 5, "pf": float("nan")}, "invalid_payload", "pf"),
        ("charge", {"power_w": 5, "pf": 1.5}, "out_of_range", "pf"),
        ("charge", {"power_w": 5, "pf": 0.9}, "out_of_range", "pf"),  # 704: unity only
        ("charge", {"power_w": 5, "watts": 1}, "invalid_payload", "watts"),
        ("discharge", {"current_a": 5}, "invalid_payload", "current_a"),
        ("hold", {"x": 1}, "invalid_payload", "x"),
        ("recover_soc", {"power_w": "x"}, "invalid_payload", "power_w"),
        ("launch", {}, "unknown_command", "launch"),
    ],
)
def test_invalid_commands_name_the_field(command: str, body: dict, code: str, field: str) -> None:
    async def main() -> None:
        r = make_rig()
        await r.to_holding()
        n = len(r.dev.writes)
        reply = await r.cmd(command, body)
        assert reply["ok"] is False and reply["error"]["code"] == code
        assert field in reply["error"]["message"] and len(reply["error"]["message"]) < 200
        assert r.ctl.state == "holding" and len(r.dev.writes) == n

    run(main())


def test_strict_power_sign_off_takes_magnitude() -> None:
    async def main() -> None:
        r = make_rig(strict_power_sign=False)
        await r.to_holding()
        reply = await r.cmd("charge", {"power_w": -5000})
        assert reply["ok"] and reply["setpoint"]["applied_w"] == 5000
        assert r.dev.of("WSet")[-1] == -5000

    run(main())


def test_current_mode_converts_with_battery_voltage() -> None:
    async def main() -> None:
        r = make_rig(user_command_mode="CURRENT")
        await r.to_holding()
        reply = await r.cmd("charge", {"current_a": 10})
        assert reply["setpoint"]["requested_w"] == 8000  # 10 A x 800 V
        assert r.dev.of("WSet")[-1] == -8000
        bad = await r.cmd("charge", {"power_w": 10})
        assert bad["error"]["code"] == "invalid_payload"

    run(main())


def test_state_snapshot_shape() -> None:
    async def main() -> None:
        r = make_rig()
        await r.to_holding()
        await r.cmd("charge", {"power_w": 5000})
        snap = r.ctl.snapshot()
        assert set(snap) == {
            "state",
            "setpoint",
            "limits",
            "soc",
            "faults",
            "reason",
            "mode",
            "why",
            "grid",  # grid support (issue 10)
            "ts",
        }
        assert snap["state"] == "charging" and snap["soc"] == 50.0
        assert snap["setpoint"] == {"requested_w": 5000, "applied_w": 5000}
        assert set(snap["limits"]) == {"charge_w", "discharge_w", "source"}
        assert snap["reason"] == "command charge"
        got = await r.cmd("get_state")
        assert got["state"] == "charging" and got["limits"] == snap["limits"]

    run(main())


def test_user_profile_subclass_is_loaded() -> None:
    from edge.controller.profiles import profile_class
    from tests.unit.controller_fakes import settings

    cls = profile_class(settings(profile_class="tests.unit.test_controller_core:MyProfile"))
    assert cls is MyProfile
    with pytest.raises(TypeError):
        profile_class(settings(profile_class="tests.unit.controller_fakes:FakeClock"))


from edge.controller.profiles import SunSpec704Profile  # noqa: E402


class MyProfile(SunSpec704Profile):
    """A user's subclass, as the original's device subclasses."""

    name = "mine"


def test_failed_stop_sequence_is_retried_and_blocks_reset_until_complete() -> None:
    """A stop whose contactor step failed leaves the site possibly energised: the controller
    retries it every refresh_s, and `reset` is refused until it has completed."""

    async def main() -> None:
        r = make_rig()
        await r.to_holding()
        await r.cmd("discharge", {"power_w": 5000})
        r.dev.refuse[("battery", "802", "SetOp")] = "offline"
        r.bat("Evt1", 1 << 1)  # OVER_TEMP_ALARM: trip
        await r.settle()
        assert r.ctl.state == "fault"
        attempts = len(r.dev.of("SetOp"))
        r.bat("Evt1", 0)  # the cause is gone, but the contactors never opened
        reply = await r.cmd("reset")
        assert reply["error"]["code"] == "fault_active"
        assert "stop sequence did not complete" in reply["error"]["message"]
        del r.dev.refuse[("battery", "802", "SetOp")]
        await r.advance(r.ctl.s.refresh_s + 0.5, soc=50.0)
        await r.settle()
        assert len(r.dev.of("SetOp")) > attempts and r.dev.of("SetOp")[-1] == 2
        assert (await r.cmd("reset"))["ok"] and r.ctl.state == "stopped"

    run(main())


def test_failed_stop_is_retried_when_the_device_comes_back_online() -> None:
    async def main() -> None:
        r = make_rig()
        await r.to_holding()
        await r.cmd("discharge", {"power_w": 5000})
        r.dev.refuse[("battery", "802", "SetOp")] = "offline"
        r.ctl.on_status("battery", "offline")
        await r.settle()
        assert r.ctl.state == "fault"
        attempts = len(r.dev.of("SetOp"))
        del r.dev.refuse[("battery", "802", "SetOp")]
        r.ctl.on_status("battery", "online")  # no clock advance: the retry is immediate
        await r.settle()
        assert len(r.dev.of("SetOp")) == attempts + 1 and r.dev.of("SetOp")[-1] == 2
        assert (await r.cmd("reset"))["ok"] and r.ctl.state == "stopped"

    run(main())
