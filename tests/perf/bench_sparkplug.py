"""Benchmark: the Sparkplug B edge node's DDATA metrics/s per core, next to the plain topic
tree's points/s per core for a bare subscriber, in the same run, on a real local Mosquitto.

One publisher process offers the same stream of point values to both (a device with `meta`
and `status`, every point changing every round). Measured in this process: a bare MqttClient
subscriber that decodes every point (the baseline: what any SCADA reading the tree pays), then
the edge node (tree in, DDATA out). A second process, the independent test host
(tests/sparkplug_host.py), counts the metrics that arrive in DDATA and their latency.
Per core = messages / CPU seconds of this process. Not part of the default test run.

    .venv/bin/python -m tests.perf.bench_sparkplug [points_per_s] [seconds]
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edge.mosquitto import MosquittoProcess
from edge.mqtt import BrokerSettings, Message, MqttClient, Topics, jsonutil
from edge.sparkplug.config import SparkplugSchema
from edge.sparkplug.service import SparkplugService

SITE, DEVICE, N_POINTS = "bench", "dev", 1000
T = Topics(SITE)


def percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def publisher(port: int, rate: float, seconds: float, ready: Any, sent: Any) -> None:
    """Offer `rate` point values per second for `seconds`; each value is its send time."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    c = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    meta = {
        "device": DEVICE,
        "points": {
            f"1/P{i}": {"unit": "W", "type": "int32", "access": "R"} for i in range(N_POINTS)
        },
    }
    c.publish(T.meta(DEVICE), json.dumps(meta), 1, retain=True).wait_for_publish(5)
    c.publish(T.status(DEVICE), "online", 1, retain=True).wait_for_publish(5)
    topics = [T.point(DEVICE, 1, f"P{i}") for i in range(N_POINTS)]
    ready.wait(10)
    # 20 slices a second: each point changes every N_POINTS / rate s (0.25 s by default),
    # longer than the edge node's publish interval, so by-exception batching coalesces nothing.
    per_slice = max(1, int(rate / 20))
    t_end = time.monotonic() + seconds
    nxt = time.monotonic()
    i = 0
    while time.monotonic() < t_end:
        now = time.time()
        for _ in range(per_slice):
            c.publish(topics[i % N_POINTS], repr(now), 0)
            i += 1
        nxt += 0.05
        time.sleep(max(0.0, nxt - time.monotonic()))
    sent.put(i)
    time.sleep(0.3)
    c.disconnect()
    c.loop_stop()


def counter(port: int, seconds: float, out: Any, ready: Any) -> None:
    """The independent host: metrics per DDATA, latency from the value (the send time)."""
    from types import SimpleNamespace

    from tests.sparkplug_host import Host

    host = Host(SimpleNamespace(host="127.0.0.1", port=port), "bench")
    host.rebirth(SITE)  # joined a running edge node: ask for its births, as hosts do
    host.wait(lambda: host.find("NBIRTH"), 10, "NBIRTH")
    with host.lock:
        host.errors.clear()  # data seen before the births it asked for
    ready.set()
    time.sleep(seconds)
    last, deadline = -1, time.monotonic() + 15  # until DDATA stops arriving (drained)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        with host.lock:
            now = len(host.messages)
        if now == last:
            break
        last = now
    lat, n = [], 0
    with host.lock:
        for r in host.messages:
            if r.kind == "DDATA":
                for m in r.payload.metrics:
                    n += 1
                    if isinstance(m.value, float):
                        lat.append((r.at_wall - m.value) * 1000)
    host.close()
    out.put({"metrics": n, "lat": lat, "errors": host.errors[:5]})


async def baseline(port: int, rate: float, seconds: float) -> dict[str, float]:
    client = MqttClient(BrokerSettings(port=port), "bench-plain")
    lat: list[float] = []
    prefix = f"{T.device(DEVICE)}/1/"

    def on_point(msg: Message) -> None:
        if msg.topic.startswith(prefix):
            lat.append((time.time() - jsonutil.loads(msg.payload)) * 1000)

    client.subscribe(T.all, on_point, qos=0)
    await client.start()
    return await _measure(port, rate, seconds, lambda: len(lat), lat, client.stop)


async def sparkplug(port: int, rate: float, seconds: float) -> dict[str, float]:
    cfg = SparkplugSchema().load(
        {"group_id": "bench", "controller": False, "publish_interval_s": 0.05}
    )
    svc = SparkplugService(SITE, BrokerSettings(port=port), cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    while not svc.client.connected:
        await asyncio.sleep(0.01)

    async def finish() -> None:
        stop.set()
        await asyncio.wait_for(task, 10)

    return await _measure(port, rate, seconds, None, None, finish)


async def _measure(
    port: int, rate: float, seconds: float, count: Any, lat: Any, finish: Any
) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    ready, out, sent = ctx.Event(), ctx.Queue(), ctx.Queue()
    cnt = ctx.Process(target=counter, args=(port, seconds, out, ready)) if count is None else None
    if cnt is None:
        ready.set()
    else:
        cnt.start()
    pub = ctx.Process(target=publisher, args=(port, rate, seconds, ready, sent))
    pub.start()
    await asyncio.sleep(0.5)  # meta, status and the first births
    cpu0, wall0 = time.process_time(), time.monotonic()
    n0 = count() if count is not None else 0
    while pub.is_alive():
        await asyncio.sleep(0.05)
    offered = sent.get(True, 10)
    # Until everything offered has gone through (a lagging consumer keeps working after the
    # publisher stops): CPU and time are counted to the end of the work, less the quiet wait.
    if cnt is not None:
        got = await asyncio.to_thread(out.get, True, 60)
        quiet = 1.0
        n, lat = got["metrics"], got["lat"]
    else:
        quiet, last = 0.3, -1
        while (now := count()) != last:
            last = now
            await asyncio.sleep(quiet)
        n = count() - n0
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0 - quiet
    await finish()
    if cnt is not None:
        cnt.join(10)
        if got["errors"]:
            raise AssertionError(f"host found protocol errors: {got['errors']}")
    return {
        "offered": offered,
        "messages": n,
        "per_s": n / wall,
        "cpu_s": cpu,
        "per_core_s": n / cpu if cpu else float("nan"),
        "p50_ms": statistics.median(lat) if lat else float("nan"),
        "p99_ms": percentile(lat, 0.99),
    }


def main(rate: float = 4000, seconds: float = 5) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as d:
        broker = MosquittoProcess(workdir=Path(d))
        broker.start()
        try:
            plain = asyncio.run(baseline(broker.port, rate, seconds))
            sp = asyncio.run(sparkplug(broker.port, rate, seconds))
        finally:
            broker.cleanup()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"offered: {rate:.0f} point values/s for {seconds:g} s ({N_POINTS} points, all changing)")
    for name, r in (("plain tree, bare subscriber", plain), ("Sparkplug DDATA, edge node", sp)):
        print(
            f"{name:28s} {r['messages']:6.0f}/{r['offered']:.0f} delivered "
            f"{r['per_s']:7.0f} /s  {r['per_core_s']:7.0f} /s per core  "
            f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  cpu {r['cpu_s']:.2f} s"
        )
    print(
        f"edge node cost per metric: {1e6 / sp['per_core_s']:.1f} us CPU "
        f"(bare subscriber: {1e6 / plain['per_core_s']:.1f} us per point); max RSS {rss_mb:.0f} MB"
    )
    return {"plain": plain, "sparkplug": sp}


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:3]]
    main(*args)
