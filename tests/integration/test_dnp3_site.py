"""The DNP3 outstation against the simulated site over the real broker, driven by masters
from other code bases than the outstation's library (dnp3py): opendnp3 for reads and events,
nfm-dnp3 for controls. Every value is checked against the simulator or the controller."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from edge.mqtt.topics import CONTROLLER_COMMANDS
from tests.broker import Broker
from tests.integration.dnp3_master import Master
from tests.integration.dnp3_site import Dnp3Site
from tests.integration.opendnp3_master import OpenDnp3Master

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _run(coro: Any) -> None:
    asyncio.run(asyncio.wait_for(coro, 100))


async def _until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await asyncio.to_thread(pred)
        if got:
            return got
        await asyncio.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def _last(rows: list[Any], index: int) -> Any:
    mine = [r for r in rows if r[1] == index]
    return mine[-1] if mine else None


def test_integrity_poll_and_timed_fault_event_opendnp3(broker: Broker) -> None:
    async def main() -> None:
        async with Dnp3Site(broker) as s:
            site = s.site
            soc = site.value("battery", 802, "SoC")
            capacity = site.value("battery", 802, "WHRtg")
            limits = site.ctl.snapshot()["limits"]
            with OpenDnp3Master(s.port) as m:
                await asyncio.to_thread(m.integrity)
                await _until(lambda: len(m.rows("Group30")) >= 12, 5, "static analogs")
                bi = {i: v for _, i, v, _ in m.rows("Group1")}
                ai = {i: v for _, i, v, _ in m.rows("Group30")}
                assert bi[0] is True and bi[1] is True and bi[2] is True  # controller, devices
                assert bi[3] is False  # no meter on this site: unknown, served COMM_LOST
                assert bi[7] is True and bi[9] is False  # stopped, not charging
                assert ai[0] == round(soc * 10)  # SoC in 0.1 %
                assert ai[1] == 2  # 50 % is in band 2 of (10, 20, 80, 90)
                assert ai[2] == 0  # state_code: stopped
                assert ai[7] == round(limits["charge_w"]) and ai[8] == round(limits["discharge_w"])
                assert ai[10] == round(capacity)

                # an injected fault (on a running site) arrives as timed events
                assert (await site.cmd("start"))["ok"]
                await site.wait_state("holding", 10)
                await asyncio.to_thread(m.clear)
                t0 = time.time()
                site.sim.inject("battery", "alarm", {"bit": 22, "on": True})
                await site.wait_state("fault", 5)
                t1 = time.time()

                def fault_events() -> Any:
                    m.events(0.2)
                    rows = m.rows("Group2Var2")
                    a, f = _last(rows, 5), _last(rows, 11)
                    return (a, f) if a and f and a[2] is True and f[2] is True else None

                alarm, fault = await _until(fault_events, 10, "alarm_battery and state_fault")
                assert t0 - 0.5 <= alarm[3] / 1000 <= t1 + 0.5, (t0, alarm, t1)
                assert t0 - 0.5 <= fault[3] / 1000 <= t1 + 0.5, (t0, fault, t1)

                # a SoC band change is a timed analog event (g32v3)
                site.sim.inject("battery", "clear", {})
                site.sim.set_value("battery", 802, "SoC", 85.0)

                def band_event() -> Any:
                    m.events(0.2)
                    row = _last(m.rows("Group32Var3"), 1)
                    return row if row and row[2] == 3 else None

                band = await _until(band_event, 10, "soc band 3")
                assert abs(band[3] / 1000 - time.time()) < 10

    _run(main())


def test_controls_nfm_master(broker: Broker) -> None:
    async def main() -> None:
        async with Dnp3Site(broker) as s:
            site = s.site

            def session_1() -> dict[str, Any]:
                out: dict[str, Any] = {}
                with Master(s.port) as m:
                    out["iin_first"] = m.integrity().iin
                    m.clear_restart()
                    out["iin_after_clear"] = m.integrity().iin
                    out["charge_when_stopped"] = m.crob(1, True)
                    out["start_direct"] = m.crob(0, True)  # start/stop requires SBO
                    out["start_sbo"] = m.crob(0, True, "sbo")
                return out

            r = await asyncio.to_thread(session_1)
            assert r["iin_first"].device_restart is True
            assert r["iin_after_clear"].device_restart is False
            assert r["charge_when_stopped"] == "BLOCKED"  # controller: not_allowed_in_state
            assert r["start_direct"] == "NOT_SUPPORTED"
            assert r["start_sbo"] == "SUCCESS"
            await site.wait_state("holding", 10)

            def session_2() -> dict[str, Any]:
                out: dict[str, Any] = {}
                with Master(s.port) as m:
                    out["soc_out_of_range"] = m.analog_out(1, 150)
                    out["w_out_of_range"] = m.analog_out(0, -20_000_000)
                    out["setpoint"] = m.analog_out(0, -20000)
                    out["enable"] = m.crob(1, True)
                    out["power_limit"] = m.crob(5, True)  # no value written yet
                    out["unmapped"] = m.crob(42, True)
                return out

            r = await asyncio.to_thread(session_2)
            assert r["soc_out_of_range"] == "OUT_OF_RANGE"
            assert r["w_out_of_range"] == "OUT_OF_RANGE"
            assert r["setpoint"] == "SUCCESS" and r["enable"] == "SUCCESS"
            assert r["power_limit"] == "FORMAT_ERROR"  # AO 4 not written yet: nothing enabled
            assert r["unmapped"] == "NOT_SUPPORTED"
            # the charge went through the controller's pipeline to the simulated inverter
            assert site.ctl.state == "charging"
            assert site.value("inverter", 704, "WSet") == -20000
            soc0 = site.value("battery", 802, "SoC")
            await site.wait(lambda: site.value("inverter", 701, "W") == -20000, 5, "-20 kW")
            await site.wait(lambda: site.value("battery", 802, "SoC") > soc0, 10, "SoC rises")

            # the active power limit (BO 5 enable, AO 4 in W) becomes cmd/limit: it lowers
            # the charge now; a refused value answers OUT_OF_RANGE and changes nothing
            def limit_session() -> dict[str, Any]:
                out: dict[str, Any] = {}
                with Master(s.port) as m:
                    out["value"] = m.analog_out(4, 12000)
                    out["enable"] = m.crob(5, True)
                    out["negative"] = m.analog_out(4, -1)
                    out["too_big"] = m.analog_out(4, 20_000_000)
                return out

            r = await asyncio.to_thread(limit_session)
            assert (r["value"], r["enable"]) == ("SUCCESS", "SUCCESS"), r
            assert (r["negative"], r["too_big"]) == ("OUT_OF_RANGE", "OUT_OF_RANGE"), r
            snap = site.ctl.snapshot()
            assert snap["limits"] == {
                "charge_w": 12000,
                "discharge_w": 12000,
                "source": "operator limit",
            }, snap["limits"]
            assert snap["why"].endswith("bound by: charge_limit (operator limit)"), snap["why"]
            assert site.value("inverter", 704, "WSet") == -12000
            await site.wait(lambda: site.value("inverter", 701, "W") == -12000, 5, "-12 kW")

            def limit_off() -> str:
                with Master(s.port) as m:
                    return m.crob(5, False)

            assert await asyncio.to_thread(limit_off) == "SUCCESS"
            assert "operator" not in site.ctl.snapshot()["limits"]["source"]
            await site.wait(lambda: site.value("inverter", 704, "WSet") == -20000, 5, "-20 kW")

            def session_3() -> dict[str, Any]:
                out: dict[str, Any] = {}
                with Master(s.port) as m:
                    out["target"] = m.analog_out(1, 80)
                    out["duration"] = m.analog_out(2, 30)
                    out["coordinated"] = m.crob(2, True)
                    out["poll"] = m.integrity()
                return out

            def new_setpoint() -> str:
                with Master(s.port) as m:
                    return m.analog_out(0, -5000)  # applied at once: the mode is enabled

            assert await asyncio.to_thread(new_setpoint) == "SUCCESS"
            assert site.value("inverter", 704, "WSet") == -5000
            r = await asyncio.to_thread(session_3)
            assert r["target"] == "SUCCESS" and r["duration"] == "SUCCESS"
            if "mode" in CONTROLLER_COMMANDS:  # the operating-modes layer is merged
                assert r["coordinated"] == "SUCCESS"
                await site.wait(lambda: site.ctl.snapshot()["mode"]["name"] == "soc_target", 5)
                # 50 % -> 80 % in 30 min is far more than the 5 kW charge before: it moves
                await site.wait(lambda: site.value("inverter", 701, "W") < -10000, 10, "soc_target")

                def mode_point() -> bool:
                    with Master(s.port) as m:
                        return m.integrity().binary[12]

                await _until(mode_point, 10, "BI 12 mode_soc_target")
            else:  # cmd/mode is refused unknown_command by this controller
                assert r["coordinated"] == "NOT_SUPPORTED"
                assert site.value("inverter", 704, "WSet") == -5000  # nothing changed
                assert r["poll"].analog[6] == site.ctl.snapshot()["setpoint"]["applied_w"] == 5000

            # a master with another address is not answered, and is counted
            def stranger() -> bool:
                with Master(s.port, master_address=7, timeout=1.0) as m:
                    return m.integrity().ok

            rejected = s.svc.os.outstation.rejected_frames
            state, reason = site.ctl.state, site.ctl.reason
            assert await asyncio.to_thread(stranger) is False
            assert s.svc.os.outstation.rejected_frames > rejected
            assert (site.ctl.state, site.ctl.reason) == (state, reason)

    _run(main())


def test_reconnect_bounded_events_and_master_loss_fallback(broker: Broker) -> None:
    async def main() -> None:
        async with Dnp3Site(broker, event_buffer=4, master_timeout_s=1.5) as s:
            site = s.site

            def command_then_drain() -> None:
                with Master(s.port) as m:
                    assert m.crob(0, True, "sbo") == "SUCCESS"

            await asyncio.to_thread(command_then_drain)
            await site.wait_state("holding", 10)

            def charge() -> None:
                with Master(s.port) as m:
                    assert m.analog_out(0, -10000) == "SUCCESS"
                    assert m.crob(1, True) == "SUCCESS"
                    m.all_events()  # drained; the master now goes away

            await asyncio.to_thread(charge)
            assert site.ctl.state == "charging"
            # the master is lost: after 1.5 s the outstation falls back to hold
            await site.wait_state("holding", 6)
            await site.wait(lambda: (s.dnp3_state or {}).get("fallback", {}).get("active"), 3)
            assert s.dnp3_state is not None
            assert "DNP3 master silent" in s.dnp3_state["fallback"]["reason"]
            assert s.dnp3_state["fallback"]["mode"] == "hold"
            assert site.value("inverter", 704, "WSet") == 0
            # the controller's own state names the fallback, not an operator's hold
            snap = site.ctl.snapshot()
            assert snap["mode"]["source"] == "fallback", snap["mode"]
            assert snap["why"].startswith("manual: fallback: DNP3 master silent for "), snap["why"]

            # while no master listens, SoC crosses band 2 <-> 3 six times: 12 band events
            for soc in (85.0, 50.0) * 6:
                site.sim.set_value("battery", 802, "SoC", soc)
                await site.wait(lambda v=soc: site.ctl.snapshot()["soc"] == v, 5, f"soc {soc}")
                await asyncio.sleep(0.05)
            await site.wait(lambda: s.svc.image.events_dropped > 0, 3, "events dropped")

            def reconnect() -> tuple[list[Any], Any]:
                with OpenDnp3Master(s.port) as o:  # decodes g32v3 (nfm-dnp3 does not)
                    o.events(1.0)
                    rows = o.rows()
                with Master(s.port) as m:
                    poll = m.integrity()
                return rows, poll

            rows, poll = await asyncio.to_thread(reconnect)
            class2 = [
                r
                for r in rows
                if (r[0].startswith("Group32") and r[1] == 1)
                or (r[0].startswith("Group2") and r[1] in (7, 8, 9, 10, 12))
            ]
            bands = [v for gv, i, v, _ in class2 if gv.startswith("Group32")]
            # buffered while away, bounded to 4 per class, oldest dropped: the newest survive
            assert 1 <= len(class2) <= 4, rows
            assert bands and bands[-1] == 2, rows  # the last change (back to 50 %)
            # BI 13 (fallback) ends with the master's return: its last event says so
            fallback = [r for r in rows if r[0].startswith("Group2") and r[1] == 13]
            assert fallback and fallback[-1][2] is False, rows
            assert poll.iin is not None and poll.iin.event_buffer_overflow is True
            assert poll.analog[11] >= 8  # events_dropped
            await site.wait(lambda: s.dnp3_state["events"]["dropped"] >= 8, 6, "state topic")
            assert s.dnp3_state["master"]["connections"] >= 3

    _run(main())


@pytest.mark.parametrize("unsolicited", [True, False])
def test_unsolicited_is_configurable(broker: Broker, unsolicited: bool) -> None:
    async def main() -> None:
        async with Dnp3Site(broker, unsolicited=unsolicited) as s:
            site = s.site
            with OpenDnp3Master(s.port, unsolicited=True) as m:  # the master asks for them
                await asyncio.sleep(1.5)  # startup: integrity poll, enable unsolicited
                await asyncio.to_thread(m.clear)
                site.sim.set_value("battery", 802, "SoC", 85.0)  # band 2 -> 3, no poll

                def band_3() -> Any:
                    row = _last(m.rows("Group32Var3"), 1)
                    return row if row and row[2] == 3 else None

                if unsolicited:
                    await _until(band_3, 5, "band 3 event, unsolicited")
                    assert s.svc.os.runner.unsolicited_sent >= 1
                else:
                    await asyncio.sleep(2.0)
                    assert band_3() is None  # not sent: the master must poll for it
                    assert s.svc.os.runner.unsolicited_sent == 0
                    await asyncio.to_thread(m.events)
                    await _until(band_3, 5, "band 3 event, polled")

    _run(main())


def test_freq_watt_written_over_dnp3_is_applied_and_bad_curve_points_refused(
    broker: Broker,
) -> None:
    """AO 21/23/24 and BO 8 (nfm-dnp3) become `cmd/grid` requests: the controller's `grid`
    state and the simulated inverter's 711 (sunspec_704 runs droop natively) hold them; BI 16
    says so. Points the controller refuses answer OUT_OF_RANGE and change nothing."""

    async def main() -> None:
        async with Dnp3Site(broker, meter={"load_w": 0}) as s:
            site = s.site
            await site.wait(lambda: site.ctl.t.get("inverter", "711", "Ena") is not None, 10, "711")

            def fw() -> dict[str, Any]:
                return dict(site.ctl.grid_report()["functions"]["freq_watt"])

            assert fw()["enabled"] is False

            def start() -> str:
                with Master(s.port) as m:
                    return m.crob(0, True, "sbo")

            # native functions are written to the inverter at a start
            assert await asyncio.to_thread(start) == "SUCCESS"
            await site.wait_state("holding", 10)

            def write() -> dict[str, Any]:
                out: dict[str, Any] = {}
                with Master(s.port) as m:
                    out["db_under"] = m.analog_out(21, 20)  # mHz: 0.020 Hz
                    out["k_under"] = m.analog_out(23, 40)  # 0.040 per unit
                    out["response"] = m.analog_out(24, 10)  # 0.1 s: 1.0 s
                    out["enable"] = m.crob(8, True)
                return out

            r = await asyncio.to_thread(write)
            assert r == dict.fromkeys(r, "SUCCESS"), r
            f = fw()
            assert f["enabled"] is True and f["where"] == "inverter"
            assert f["params"]["db_under_hz"] == pytest.approx(0.02)
            assert f["params"]["k_under"] == pytest.approx(0.04)
            assert f["params"]["response_s"] == pytest.approx(1.0)
            # the inverter holds and runs it (written and read back over Modbus)
            await site.wait(lambda: site.value("inverter", 711, "Ena") == 1, 10, "711 Ena")
            assert float(site.value("inverter", 711, "Ctl.KUf")) == pytest.approx(0.04, abs=1e-3)
            assert float(site.value("inverter", 711, "Ctl.DbUf")) == pytest.approx(0.02, abs=1e-3)

            def enabled_flag() -> bool:
                with Master(s.port) as m:
                    return m.integrity().binary[16]

            await _until(enabled_flag, 10, "BI 16 freq_watt_enabled")

            # and it acts: an under-frequency step makes the charging battery charge less
            def charge() -> list[str]:
                with Master(s.port) as m:
                    return [m.analog_out(0, -20000), m.crob(1, True)]

            assert await asyncio.to_thread(charge) == ["SUCCESS", "SUCCESS"]
            w = lambda: float(site.value("inverter", 701, "W"))  # noqa: E731
            await site.wait(lambda: abs(w() + 20000) < 300, 10, "charging 20 kW")
            site.sim.inject("meter", "grid", {"hz": 59.5})
            await site.wait(lambda: w() > -20000 + 5000, 10, "under-frequency droop")
            site.sim.inject("meter", "grid", {"release": True})
            await site.wait(lambda: abs(w() + 20000) < 500, 10, "back to the command")

            grid_before = site.ctl.grid_report()
            kof_before = site.value("inverter", 711, "Ctl.KOf")

            def refused() -> dict[str, Any]:
                out: dict[str, Any] = {}
                with Master(s.port) as m:
                    out["k_over"] = m.analog_out(22, 500)  # 0.5: the controller allows 0.01-0.1
                    out["vv_order"] = m.analog_out(8, 900)  # volt-var point 1 at 90 % < point 0
                    out["vv_range"] = m.analog_out(6, 2000)  # 200 %: outside the map
                    out["vv_pt3_v"] = m.analog_out(12, 1200)  # point 3 to 120 %: accepted
                    out["vv_pt3_q"] = m.analog_out(13, -500)  # at once: both coordinates stay
                return out

            r = await asyncio.to_thread(refused)
            assert r["k_over"] == "OUT_OF_RANGE"
            assert r["vv_order"] == "OUT_OF_RANGE"
            assert r["vv_range"] == "OUT_OF_RANGE"
            assert r["vv_pt3_v"] == r["vv_pt3_q"] == "SUCCESS"
            after = site.ctl.grid_report()
            vv = after["functions"]["volt_var"]["params"]["points"]
            assert vv[3] == pytest.approx([120.0, -50.0])
            # apart from the accepted point 3, nothing changed
            vv_before = grid_before["functions"]["volt_var"]["params"]["points"]
            assert vv[:3] == vv_before[:3]
            assert after["functions"]["freq_watt"] == grid_before["functions"]["freq_watt"]
            assert site.value("inverter", 711, "Ctl.KOf") == kof_before

    _run(main())
