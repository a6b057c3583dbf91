"""Frequency-step response, inverter-native (704 profile: the simulated inverter runs 711)
against controller-side (123 profile: the controller runs the droop from the meter's Hz),
for two meter poll periods, over a real Mosquitto with the real adapters.

Figure: seconds from a 0.5 Hz under-frequency step until the inverter's measured power has
made 90 % of the droop's change. Baseline in the same run: the simulated inverter's own
response with no controller, MQTT or Modbus in the way (the physics stepped in-process), i.e.
the 711 `RspTms` floor. Run: `.venv/bin/python -m tests.perf.bench_grid`.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from adapters.simulator import SiteSimulator
from edge.mosquitto import MosquittoProcess
from tests.integration.controller_site import ControllerSite, started

RATING = 100_000.0
RSP_S = 1.0
TICK_S = 0.5
DELTA = (0.5 - 0.036) / 60 / 0.05 * RATING
WATTS = {"sunspec_704": (701, "W"), "sunspec_123": (103, "W")}


def bare_native() -> float:
    """Simulated seconds for the inverter alone to make 90 % of the droop."""
    devices = [
        {"name": "battery", "kind": "battery", "connect_delay_s": 0.1},
        {"name": "inverter", "kind": "inverter", "profile": "sunspec"},
        {"name": "meter", "kind": "meter", "load_w": 30_000},
    ]
    sim = SiteSimulator({"devices": devices}, site="b")
    sim.set_value("battery", 802, "SetOp", 1)
    sim.advance(0.5)
    for p, v in (("WSetMod", 1), ("WSet", -20_000), ("WSetEna", 1)):
        sim.set_value("inverter", 704, p, v)
    sim.set_value("inverter", 711, "Ctl.RspTms", RSP_S)
    sim.set_value("inverter", 711, "Ena", 1)
    sim.advance(5)
    sim.inject("meter", "grid", {"hz": 59.5})
    t = 0.0
    while sim.value("inverter", 701, "W") < -20_000 + 0.9 * DELTA:
        sim.advance(0.01)
        t += 0.01
    return t


async def steps(broker: Any, profile: str, poll_s: float, n: int) -> tuple[list[float], float]:
    ctl = {"grid": {"rating_w": RATING, "freq_watt": {"enabled": True, "response_s": RSP_S}},
           "control_tick_s": TICK_S}  # fmt: skip
    out: list[float] = []
    async with ControllerSite(
        broker, profile, controller=ctl, meter={"load_w": 30_000}, meter_poll_s=poll_s
    ) as site:
        model, point = WATTS[profile]

        def w() -> float:
            return float(site.value("inverter", model, point))

        if profile == "sunspec_704":
            await site.wait(lambda: site.ctl.t.get("inverter", "711", "Ena") is not None, 10)
        await started(site)
        await site.cmd("charge", {"power_w": 20_000})
        await site.wait(lambda: abs(w() + 20_000) < 300, 10, "charging")
        for _ in range(n):
            await asyncio.sleep(poll_s * 1.7)  # a different phase against the polls each time
            site.sim.inject("meter", "grid", {"hz": 59.5})
            t0 = time.monotonic()
            await site.wait(lambda: w() >= -20_000 + 0.9 * DELTA, 10, "droop")
            out.append(time.monotonic() - t0)
            site.sim.inject("meter", "grid", {"release": True})
            await site.wait(lambda: abs(w() + 20_000) < 500, 10, "back")
        reported = site.ctl.grid_report()["functions"]["freq_watt"]["response_s"]
    return out, float(reported)


async def main(broker: Any, n: int) -> None:
    base = bare_native()
    print(f"baseline: simulated 704 inverter alone, 711 RspTms {RSP_S:g} s -> 90 % in {base:.2f} s")
    print(
        f"{'profile':<12} {'where':<10} {'meter poll':>10} {'p50 s':>7}"
        f" {'max s':>7} {'reported s':>10}"
    )
    for poll in (0.25, 1.0):
        for profile, where in (("sunspec_704", "inverter"), ("sunspec_123", "controller")):
            times, rep = await steps(broker, profile, poll, n)
            print(f"{profile:<12} {where:<10} {poll:>10.2f} {statistics.median(times):>7.2f}"
                  f" {max(times):>7.2f} {rep:>10.2f}")  # fmt: skip


def run(n: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoProcess(workdir=Path(tmp))
        broker.start()
        try:
            asyncio.run(main(broker, n))
        finally:
            broker.stop()


if __name__ == "__main__":
    run()
