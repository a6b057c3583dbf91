"""Operating modes in closed loop: the controller, the real Modbus adapters (the meter polled
every 0.5 s, as a real one would be) and the simulator's site physics (meter = load - inverter),
over a real Mosquitto. One test per mode, plus the meter-fault fallback.

Step response bounds (peak shaving, +20 kW load step, target 50 kW, control tick 1 s): import
settles within 1 kW of the target in at most 10 s, never dips more than 1 kW below it
(overshoot), and then stays within 300 W peak to peak (no limit cycle).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from edge.mqtt import jsonutil
from tests.broker import Broker
from tests.integration.controller_site import (
    SITE,
    ControllerSite,
    T,
    grid,
    inverter_w,
    sample,
    set_load,
    settling,
    started,
    step_response,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _run(coro: Any) -> None:
    asyncio.run(asyncio.wait_for(coro, 120))


def test_peak_shaving_step_response_settles_without_overshoot(broker: Broker) -> None:
    async def main() -> None:
        async with ControllerSite(broker, meter={"load_w": 40_000}) as site:
            await started(site)
            r = await site.cmd(
                "mode",
                {
                    "mode": "peak_shaving",
                    "params": {"target_w": 50_000, "recharge_below_w": 30_000, "recharge_w": 5000},
                },
            )
            assert r["ok"], r
            # 40 kW: between the recharge threshold and the target, so it holds
            await asyncio.sleep(2.5)
            assert site.ctl.state == "holding" and inverter_w(site) == 0
            assert "hold; bound by: none" in site.ctl.why
            set_load(site, 60_000)  # +20 kW
            series = await sample(site, 14.0)
            resp = step_response(series, 50_000)
            print("peak_shaving step response", resp)
            assert resp["settle_s"] is not None and resp["settle_s"] <= 10.0, resp
            assert resp["lowest_w"] >= 49_000, resp  # overshoot below target <= 1 kW
            assert resp["tail_pp_w"] <= 300, resp  # no limit cycle
            assert site.ctl.state == "discharging"
            assert abs(inverter_w(site) - 10_000) <= 1000
            assert site.ctl.why.startswith("peak_shaving: import 5")
            # the load falls under the recharge threshold: it recharges, at most 5 kW
            set_load(site, 20_000)
            await site.wait(lambda: inverter_w(site) <= -4_900, 15, "recharge at 5 kW")
            assert grid(site) <= 30_000

    _run(main())


def test_self_consumption_zero_export_follows_the_load(broker: Broker) -> None:
    async def main() -> None:
        async with ControllerSite(broker, meter={"load_w": 30_000}) as site:
            await started(site)
            r = await site.cmd(
                "mode",
                {"mode": "self_consumption", "params": {"deadband_w": 200, "zero_export": True}},
            )
            assert r["ok"], r
            series = await sample(site, 10.0)
            assert settling(series, 0.0, 200.0) is not None, series[-5:]
            assert abs(inverter_w(site) - 30_000) <= 300
            set_load(site, 10_000)  # the battery now gives 20 kW too much
            series = await sample(site, 8.0)
            exporting = [t for t, w in series if w < -200]
            print("self_consumption: export lasted", exporting[-1] if exporting else 0, "s")
            assert not exporting or exporting[-1] <= 2.5, exporting[-1]
            assert settling(series, 0.0, 200.0) is not None
            assert abs(inverter_w(site) - 10_000) <= 300

    _run(main())


def test_soc_target_reaches_the_target_by_the_time_at_constant_power(broker: Broker) -> None:
    async def main() -> None:
        # a 2 kWh battery so that 1 % takes seconds: 20 Wh in 20 s is 3.6 kW
        async with ControllerSite(broker, battery={"capacity_wh": 2000.0}) as site:
            await started(site)
            soc0 = float(site.value("battery", 802, "SoC"))
            by = datetime.now(UTC) + timedelta(seconds=20)
            target = soc0 + 1.0
            r = await site.cmd(
                "mode",
                {
                    "mode": "soc_target",
                    "params": {"target_soc": target, "by": by.isoformat(), "tolerance_soc": 0.2},
                },
            )
            assert r["ok"] and r["state"] == "charging", r
            await asyncio.sleep(3)
            assert -4_200 <= inverter_w(site) <= -3_000, inverter_w(site)
            await site.wait_state("holding", 25)
            assert datetime.now(UTC) <= by + timedelta(seconds=2)
            soc = float(site.value("battery", 802, "SoC"))
            assert target - 0.3 <= soc <= target + 0.3, (soc, target)

    _run(main())


def test_manual_and_time_of_use_through_the_schedule(broker: Broker) -> None:
    async def main() -> None:
        now = datetime.now(UTC)
        start = now.strftime("%H:%M")
        end = (now + timedelta(minutes=30)).strftime("%H:%M")
        tou = {
            "default": {"mode": "manual", "params": {"power_w": -5000}},
            "windows": [
                {
                    "name": "peak",
                    "start": start,
                    "end": end,
                    "mode": "manual",
                    "params": {"power_w": 8000},
                },
            ],
        }
        async with ControllerSite(broker, controller={"schedule": tou}) as site:
            await started(site)
            await site.wait(lambda: inverter_w(site) == 8000, 5, "schedule window: 8 kW")
            assert site.ctl.mode_state()["source"] == "schedule"
            assert site.ctl.state == "discharging"
            r = await site.cmd("schedule", {"schedule": {"default": tou["default"]}})
            assert r["ok"] and r["mode"]["params"] == {"power_w": -5000.0}, r
            await site.wait(lambda: inverter_w(site) == -5000, 5, "default: charge 5 kW")
            # an operator's manual mode overrides the schedule
            r = await site.cmd("mode", {"mode": "manual", "params": {"power_w": 3000}})
            assert r["ok"] and r["state"] == "discharging", r
            await site.wait(lambda: inverter_w(site) == 3000, 5, "manual 3 kW")
            await asyncio.sleep(2)
            assert inverter_w(site) == 3000 and site.ctl.mode_state()["source"] == "command"

    _run(main())


def test_meter_fault_falls_back_to_hold_on_the_state_topic_and_resumes(broker: Broker) -> None:
    async def main() -> None:
        async with ControllerSite(broker, meter={"load_w": 60_000}) as site:
            states: list[dict[str, Any]] = []
            site.client.subscribe(
                T.controller_state, lambda m: states.append(jsonutil.loads(m.payload)), qos=1
            )
            await started(site)
            await site.cmd("mode", {"mode": "peak_shaving", "params": {"target_w": 50_000}})
            await site.wait(lambda: inverter_w(site) >= 9_000, 10, "shaving 10 kW")
            for action in ("kill", "freeze"):
                site.sim.inject("meter", action, {"on": True})
                await site.wait(lambda: inverter_w(site) == 0, 15, f"hold after meter {action}")
                await site.wait(
                    lambda: states and states[-1]["mode"]["source"] == "fallback", 3, "fallback"
                )
                last = states[-1]
                assert last["state"] == "holding", last
                assert last["mode"]["name"] == "peak_shaving"
                assert "fall back to hold" in last["why"], last
                assert "meter" in last["why"]
                site.sim.inject("meter", "clear")
                await site.wait(lambda: inverter_w(site) >= 9_000, 20, f"resumed after {action}")
                await site.wait(lambda: states[-1]["mode"]["source"] == "command", 3, "resumed")
                assert states[-1]["why"].startswith("peak_shaving: import")
            assert SITE in T.controller_state

    _run(main())


def test_a_frozen_meter_falls_back_to_hold_and_resumes_when_it_moves(broker: Broker) -> None:
    """`inject meter stale`: the meter answers every poll (its adapter's `ts` stays fresh) but
    its registers no longer change, while the site goes on. Frozen at a peak, peak shaving
    would discharge ever harder against it; the watch sees the battery move and the reading
    not, and holds."""

    async def main() -> None:
        ctl = {"meter_frozen_s": 4.0}
        # a real site's load is never still to the watt: 100 W of noise, wandering over ~5 s
        meter = {"load_w": 40_000, "load_noise_w": 100, "load_noise_tau_s": 5}
        async with ControllerSite(broker, meter=meter, controller=ctl) as site:
            states: list[dict[str, Any]] = []
            site.client.subscribe(
                T.controller_state, lambda m: states.append(jsonutil.loads(m.payload)), qos=1
            )
            events: list[dict[str, Any]] = []
            site.client.subscribe(
                T.controller_events, lambda m: events.append(jsonutil.loads(m.payload)), qos=1
            )
            await started(site)
            r = await site.cmd("mode", {"mode": "peak_shaving", "params": {"target_w": 50_000}})
            assert r["ok"], r
            site.sim.inject("meter", "load", {"step_w": 20_000})  # a peak; the meter sticks on it
            await site.wait(lambda: grid(site) > 55_000, 5, "the peak on the meter")
            site.sim.inject("meter", "stale", {"on": True})
            stuck = grid(site)
            await site.wait(lambda: inverter_w(site) >= 5_000, 10, "shaving the stuck peak")
            await site.wait(
                lambda: states and states[-1]["mode"]["source"] == "fallback", 15, "fallback"
            )
            last = states[-1]
            assert last["mode"]["name"] == "peak_shaving", last
            assert "meter meter frozen: W " in last["why"], last
            assert "while battery power moved" in last["why"], last
            assert "fall back to hold" in last["why"], last
            assert site.ctl.t.number("meter", "", "ts") > time.time() - 3  # polls kept coming
            assert grid(site) == stuck
            await site.wait(lambda: inverter_w(site) == 0, 10, "hold on the frozen meter")
            await site.wait_state("holding", 3)
            assert any(
                e.get("kind") == "mode" and "frozen" in str(e.get("reason")) for e in events
            ), events
            # the reading moves again: peak shaving resumes by itself and shaves the real peak
            site.sim.inject("meter", "stale", {"on": False})
            await site.wait(lambda: states[-1]["mode"]["source"] == "command", 5, "resumed")
            await site.wait(lambda: inverter_w(site) >= 9_000, 20, "shaving after the thaw")
            assert states[-1]["why"].startswith("peak_shaving: import")
            assert any(
                e.get("kind") == "mode" and e.get("reason") == "meter back" for e in events
            ), events

    _run(main())
