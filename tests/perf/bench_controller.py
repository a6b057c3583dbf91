"""Benchmark: the controller's command path and fault-to-safe latency, each against a bare
relay of the same path (paho + pymodbus, no logic), measured in the same run.

    .venv/bin/python -m tests.perf.bench_controller [COMMANDS]
    BENCH_METER_POLL_S=1.0 .venv/bin/python -m tests.perf.bench_controller   # a slower meter
    .venv/bin/pytest tests/perf/bench_controller.py -s

The site (simulator, Modbus adapters, controller) runs on one asyncio loop over a real
Mosquitto on loopback, as in tests/integration/controller_site.py.

1. Command round trip, >= 1000 commands alternating charge/discharge: command published ->
   inverter register (704 WSet) written in the simulator -> reply received. The bare relay
   answers an MQTT 5 request by writing the same register with pymodbus and reading it back.
2. Fault-to-safe: fault register set in the simulator (802 Evt1 OVER_TEMP_ALARM) -> inverter
   power 0 written (704 WSet = 0). The bare relay polls Evt1 with pymodbus at the adapter's
   poll period and writes WSet = 0 as soon as a bit is set.
3. Mode tick cost: one control step of each shipped mode (mode.step + the pipeline) as pure
   functions, and the controller's whole control step (SiteView from telemetry, mode, pipeline,
   state), against the bare clamp the setpoint path did before modes existed.
4. Closed-loop settling: peak shaving (target 50 kW, control tick 1 s, meter polled every
   0.5 s) under a +20 kW load step: time until import stays within 1 kW of the target, the
   overshoot past it and the ripple after; then the step back down.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient

from adapters.modbus.bus import set_nodelay
from edge.controller.limits import Limits
from edge.controller.modes import SiteView, load_mode
from edge.controller.pipeline import PipelineSettings, apply
from edge.mosquitto import MosquittoProcess
from edge.mqtt import MqttClient, Requester, Topics, serve
from edge.mqtt.rpc import Request
from tests.integration.controller_site import (
    ControllerSite,
    sample,
    set_load,
    started,
    step_response,
)
from tests.unit.controller_fakes import make_rig
from tests.unit.test_controller_sans_io import Bench

POLL_S = 0.1  # adapter poll period (ControllerSite) and the bare relay's fault poll period


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def report(name: str, samples: list[float], wall: float | None = None) -> None:
    ms = [x * 1000 for x in samples]
    line = (
        f"{name:<44} n={len(ms):5d}  p50={pct(ms, 0.5):7.2f} ms  p99={pct(ms, 0.99):7.2f} ms"
        f"  mean={statistics.fmean(ms):7.2f} ms"
    )
    if wall:
        line += f"  {len(ms) / wall:7.0f}/s"
    print(line, flush=True)


class WriteWatch:
    """Timestamps every write of 704 WSet that reaches the simulated inverter."""

    def __init__(self, site: ControllerSite) -> None:
        self.events: list[tuple[float, Any]] = []
        self.waiters: list[tuple[Any, asyncio.Future[float]]] = []
        ph = site.sim.device("inverter").physics
        img = site.sim.device("inverter").image
        orig = ph.on_write

        def on_write(points: list[tuple[int | str, str]]) -> None:
            orig(points)
            if any(n == "WSet" for _, n in points):
                now = time.perf_counter()
                v = img.get(704, "WSet")
                self.events.append((now, v))
                for want, fut in list(self.waiters):
                    if v == want and not fut.done():
                        fut.set_result(now)
                        self.waiters.remove((want, fut))

        ph.on_write = on_write  # type: ignore[method-assign]

    def expect(self, value: Any) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters.append((value, fut))
        return fut


async def bench_commands(site: ControllerSite, n: int) -> tuple[list[float], list[float], float]:
    watch = WriteWatch(site)
    assert (await site.cmd("start"))["ok"]
    await site.wait_state("holding", 5)
    rtt, to_reg = [], []
    t_all = time.perf_counter()
    for i in range(n):
        cmd, w = ("charge", 1000 + i % 50) if i % 2 else ("discharge", 2000 + i % 50)
        want = -w if cmd == "charge" else w
        fut = watch.expect(want)
        t0 = time.perf_counter()
        r = await site.cmd(cmd, {"power_w": w})
        t1 = time.perf_counter()
        assert r["ok"], r
        t_reg = await asyncio.wait_for(fut, 2)
        rtt.append(t1 - t0)
        to_reg.append(t_reg - t0)
    wall = time.perf_counter() - t_all
    await site.cmd("stop")
    return rtt, to_reg, wall


async def bench_relay(site: ControllerSite, n: int) -> tuple[list[float], float]:
    """MQTT 5 request -> pymodbus write 704 WSet + read-back -> reply. No checks, no state."""
    ref = site.sim.device("inverter").image.ref(704, "WSet")
    mb = AsyncModbusTcpClient("127.0.0.1", port=site.sim.port("inverter"), timeout=1, retries=0)
    await mb.connect()
    set_nodelay(mb)
    topics = Topics("relay")
    server = MqttClient(site.bsettings, "bench-relay")

    async def handle(req: Request) -> dict[str, Any]:
        v = int(req.body["value"])
        regs = list(struct.unpack(">HH", struct.pack(">i", v)))
        await mb.write_registers(ref.address, regs)
        rr = await mb.read_holding_registers(ref.address, count=2)
        return {"value": struct.unpack(">i", struct.pack(">HH", *rr.registers))[0]}

    serve(server, topics.set("inverter", 704, "WSet"), handle)
    await server.start()
    client = MqttClient(site.bsettings, "bench-relay-op")
    req = Requester(client, topics)
    await client.start()
    await asyncio.sleep(0.2)
    out = []
    t_all = time.perf_counter()
    for i in range(n):
        v = (2000 + i % 50) * (1 if i % 2 else -1)
        t0 = time.perf_counter()
        r = await req.request(topics.set("inverter", 704, "WSet"), {"value": v}, timeout=5)
        out.append(time.perf_counter() - t0)
        assert r["value"] == v, r
    wall = time.perf_counter() - t_all
    await client.stop()
    await server.stop()
    mb.close()
    return out, wall


async def bench_adapter_direct(site: ControllerSite, n: int) -> list[float]:
    """The same write sent straight to the adapter's set topic: splits the overhead between
    the adapter (SF read, write, read-back) and the controller's own hop."""
    topic = site.ctl.p.writer._topics.set("inverter", 704, "WSet")
    out = []
    for i in range(n):
        v = (2000 + i % 50) * (1 if i % 2 else -1)
        t0 = time.perf_counter()
        r = await site.requester.request(topic, {"value": v}, timeout=5)
        out.append(time.perf_counter() - t0)
        assert r["ok"], r
    return out


async def bench_fault_to_safe(site: ControllerSite, cycles: int) -> list[float]:
    watch = WriteWatch(site)
    out = []
    for _ in range(cycles):
        assert (await site.cmd("start"))["ok"]
        await site.wait_state("holding", 5)
        await site.cmd("discharge", {"power_w": 10000})
        await asyncio.sleep(0.3)
        fut = watch.expect(0)
        t0 = time.perf_counter()
        site.sim.inject("battery", "alarm", {"bit": 1, "on": True})
        out.append(await asyncio.wait_for(fut, 5) - t0)
        await site.wait_state("fault", 5)
        site.sim.inject("battery", "clear", {})
        await site.wait(lambda: site.ctl._fault_causes() == [], 5)
        await site.wait(lambda: not site.ctl.runner.busy(), 5)
        assert (await site.cmd("reset"))["ok"]
    return out


async def bench_relay_fault_to_safe(site: ControllerSite, cycles: int) -> list[float]:
    """pymodbus polls Evt1 every POLL_S and writes WSet 0 on any bit: the floor for polling."""
    evt = site.sim.device("battery").image.ref(802, "Evt1")
    wset = site.sim.device("inverter").image.ref(704, "WSet")
    bat = AsyncModbusTcpClient("127.0.0.1", port=site.sim.port("battery"), timeout=1, retries=0)
    inv = AsyncModbusTcpClient("127.0.0.1", port=site.sim.port("inverter"), timeout=1, retries=0)
    await bat.connect()
    await inv.connect()
    set_nodelay(bat)
    set_nodelay(inv)
    watch = WriteWatch(site)
    out = []
    for _ in range(cycles):
        site.sim.set_value("inverter", 704, "WSet", 10000)
        stop = asyncio.Event()

        async def poll(stop: asyncio.Event = stop) -> None:
            while not stop.is_set():
                rr = await bat.read_holding_registers(evt.address, count=2)
                if rr.registers[0] or rr.registers[1]:
                    await inv.write_registers(wset.address, [0, 0])
                    return
                await asyncio.sleep(POLL_S)

        task = asyncio.create_task(poll())
        await asyncio.sleep(0.05 + (len(out) % 7) * POLL_S / 7)  # spread over the poll phase
        fut = watch.expect(0)
        t0 = time.perf_counter()
        site.sim.inject("battery", "alarm", {"bit": 1, "on": True})
        out.append(await asyncio.wait_for(fut, 5) - t0)
        stop.set()
        await task
        site.sim.inject("battery", "clear", {})
    bat.close()
    inv.close()
    return out


MODE_PARAMS: dict[str, dict[str, Any]] = {
    "manual": {"power_w": 5000},
    "peak_shaving": {"target_w": 50_000, "recharge_below_w": 40_000, "recharge_w": 10_000},
    "self_consumption": {"deadband_w": 100, "zero_export": True},
    "soc_target": {"target_soc": 80, "by": "2030-01-01T00:00:00+00:00"},
}


def per_call_us(fn: Any, n: int) -> list[float]:
    """n timings of fn(), in µs, each over a batch of 100 calls."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        for _ in range(100):
            fn()
        out.append((time.perf_counter() - t0) / 100 * 1e6)
    return out


def bench_mode_tick(n: int = 200) -> None:
    site = SiteView(1.8e9, 50.0, 1000.0, 54_000.0, None, True, 50_000, 50_000, 100_000, 1000.0)
    ps = PipelineSettings(90, 10, 20, 1000)
    lim = Limits(50_000, 50_000, "x", "x")
    base = per_call_us(lambda: lim.clamp(70_000.0), n)
    print(f"{'bare clamp (the setpoint path before modes)':<44} p50={pct(base, 0.5):7.2f} µs")
    for name, params in MODE_PARAMS.items():
        mode = load_mode(name, params)
        us = per_call_us(lambda m=mode: apply(m.step(site).power_w, site, ps, 1000.0, 1.0), n)
        print(
            f"{'mode tick, pure: ' + name:<44} p50={pct(us, 0.5):7.2f} µs  "
            f"p99={pct(us, 0.99):7.2f} µs"
        )
    rig = make_rig()
    ctl = rig.ctl
    ctl.on_status("meter", "online")
    ctl.on_point("meter", "203", "W", 54_000.0)
    ctl.sm.send("start")
    ctl.sm.send("contactors_closed")
    ctl.sm.send("connected")
    ctl._select(load_mode("peak_shaving", {"target_w": 50_000}), "command", "bench")

    def step() -> None:
        ctl.core.applied_w = 0.0  # the same decision every call
        ctl._control_step()

    us = per_call_us(step, n)
    print(
        f"{'mode tick, controller control step':<44} p50={pct(us, 0.5):7.2f} µs  "
        f"p99={pct(us, 0.99):7.2f} µs"
    )
    # The core alone, no loop and no MQTT: a command, its write confirmed, the state built.
    bench = Bench()
    bench.to_holding()
    count = iter(range(10, 10**9))

    def command() -> None:
        i = next(count)
        bench.command(i, "charge" if i % 2 else "discharge", {"power_w": 1000 + i % 50})
        bench.confirm_all()
        bench.core.snapshot()

    us = per_call_us(command, n // 4)
    print(
        f"{'core: command + confirmed write + state':<44} p50={pct(us, 0.5):7.2f} µs  "
        f"p99={pct(us, 0.99):7.2f} µs"
    )


async def bench_settling(site: ControllerSite) -> None:
    """Peak shaving on the site's meter (load 40 kW): a +20 kW step, then back down."""
    await started(site)
    await site.cmd("mode", {"mode": "peak_shaving", "params": {"target_w": 50_000}})
    await asyncio.sleep(1.5)
    set_load(site, 60_000)
    r = step_response(await sample(site, 7.0), 50_000)
    settle = "never" if r["settle_s"] is None else f"{r['settle_s']:.2f} s"
    print(
        f"closed loop, peak shaving +20 kW step: settled (±1 kW of target) after {settle}, "
        f"overshoot {max(0.0, 50_000 - (r['lowest_w'] or 0)):.0f} W, "
        f"ripple {r['tail_pp_w']:.0f} W p-p",
        flush=True,
    )
    set_load(site, 40_000)
    series = await sample(site, 5.0)
    back = next((t for t, w in series if abs(w - 40_000) <= 1000), None)
    print(
        "closed loop, peak shaving -20 kW step: import back at the load (±1 kW) after "
        + ("never" if back is None else f"{back:.2f} s"),
        flush=True,
    )
    await site.cmd("stop")


async def main(n: int, cycles: int, broker: Any) -> None:
    async with ControllerSite(broker, "sunspec_704") as site:
        rtt, to_reg, wall = await bench_commands(site, n)
        relay, relay_wall = await bench_relay(site, n)
        direct = await bench_adapter_direct(site, n)
        report("controller: command -> reply", rtt, wall)
        report("controller: command -> WSet register written", to_reg)
        report("adapter alone: set request -> reply", direct)
        report("bare relay (paho + pymodbus): request -> reply", relay, relay_wall)
        extra = (pct(rtt, 0.5) - pct(relay, 0.5)) * 1000
        print(f"controller overhead over the bare relay: p50 +{extra:.2f} ms", flush=True)
        ratio = pct(rtt, 0.99) / pct(relay, 0.99)
        print(f"command -> reply p99 / bare relay p99: {ratio:.2f}x (goal <= 2x)", flush=True)
        f2s = await bench_fault_to_safe(site, cycles)
        relay_f2s = await bench_relay_fault_to_safe(site, cycles)
        report(f"controller: fault register -> WSet 0 (poll {POLL_S:g} s)", f2s)
        report(f"bare relay: fault register -> WSet 0 (poll {POLL_S:g} s)", relay_f2s)
    # a second site, with a meter, for the closed loop
    poll = float(os.environ.get("BENCH_METER_POLL_S", "0.5"))
    print(f"site meter polled every {poll:g} s (BENCH_METER_POLL_S)", flush=True)
    async with ControllerSite(
        broker, "sunspec_704", meter={"load_w": 40_000}, meter_poll_s=poll
    ) as site:
        await bench_settling(site)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the whole site process (sim + adapters + controller): {rss:.0f} MiB")


def run(n: int = 1000, cycles: int = 20) -> None:
    bench_mode_tick()
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoProcess(workdir=Path(tmp))
        broker.start()
        try:
            asyncio.run(main(n, cycles, broker))
        finally:
            broker.stop()


def test_bench_controller() -> None:
    run()


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
