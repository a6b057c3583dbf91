"""Benchmark: the DNP3 outstation (edge/dnp3) with nfm-dnp3's master on loopback.

1. integrity-poll latency (class 1-3 + class 0, the whole MESA-ESS map), p50/p99, for the
   bare library (dnp3py's Outstation and TCP runner, same database) and for ours;
2. events/s end to end: battery SoC values published on a real Mosquitto, through the
   service's site image into timed g32v3 events, read by the master with class polls;
   against the bare library fed the same values directly in the same run. At most ~900
   events: Mosquitto queues at most 1000 QoS 1 messages per subscriber (max_queued_messages)
   and the values are published as fast as paho can.

    .venv/bin/python -m tests.perf.bench_dnp3 [POLLS] [EVENTS]
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from dnp3.outstation import Outstation, OutstationConfig, OutstationTcpRunner

from edge.dnp3.config import Dnp3Schema
from edge.dnp3.outstation import build_database
from edge.dnp3.service import Dnp3Service
from edge.mosquitto import MosquittoProcess
from edge.mqtt import BrokerSettings, MqttClient, Topics, jsonutil
from tests.integration.dnp3_master import Master
from tests.integration.opendnp3_master import OpenDnp3Master

SITE = "bench"


def percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def polls(port: int, n: int) -> dict[str, float]:
    lat = []
    with Master(port) as m:
        m.integrity()
        for _ in range(n):
            t = time.perf_counter()
            assert m.integrity().ok
            lat.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": statistics.median(lat), "p99_ms": percentile(lat, 0.99)}


def read_events(port: int, n: int, started: threading.Event, timeout: float = 60.0) -> float:
    """Event polls by opendnp3's master (it confirms multi-fragment responses, which the
    outstation waits for) until `n` values have arrived; returns the time of the last one."""
    got = 0
    deadline = time.monotonic() + timeout
    with OpenDnp3Master(port) as m:
        m.integrity(0.5)
        m.clear()
        started.set()
        while got < n and time.monotonic() < deadline:
            m.events(0.01)
            got = m.count()
    if got < n:
        raise TimeoutError(f"only {got} of {n} events")
    return time.perf_counter()


class Bare:
    """The library alone, on its own thread: the baseline."""

    def __init__(self, event_buffer: int) -> None:
        cfg = Dnp3Schema().load({"enabled": True})
        self.db = build_database(cfg.points, event_buffer)
        self.os = Outstation(
            config=OutstationConfig(address=10, master_address=1, time_sync_required=False),
            database=self.db,
        )
        self.runner = OutstationTcpRunner(outstation=self.os, host="127.0.0.1", port=0)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(5)

    async def _start(self) -> None:
        self.task = asyncio.create_task(self.runner.run())
        while self.runner.local_address is None:
            await asyncio.sleep(0.005)

    @property
    def port(self) -> int:
        assert self.runner.local_address is not None
        return self.runner.local_address[1]

    def feed(self, n: int) -> None:
        def apply() -> None:
            for i in range(n):
                self.db.update_analog_input(0, 500 + (i % 2) * 100)

        self.loop.call_soon_threadsafe(apply)


async def ours(port: int, n_polls: int, n_events: int) -> dict[str, Any]:
    broker = BrokerSettings(port=port)
    cfg = Dnp3Schema().load({"enabled": True, "port": 0, "event_buffer": n_events + 10})
    svc = Dnp3Service(SITE, broker, cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    await asyncio.wait_for(svc.ready.wait(), 10)
    t = Topics(SITE)
    pub = MqttClient(broker, "bench-pub")
    await pub.start()
    state = {"state": "holding", "soc": 50.0, "faults": [], "limits": {"charge_w": 1e5}}
    pub.publish(t.controller_status, "online", qos=1, retain=True)
    pub.publish(t.controller_state, jsonutil.dumps(state), qos=1, retain=True)
    pub.publish(t.status("battery"), "online", qos=1, retain=True)
    await asyncio.sleep(0.5)
    poll = await asyncio.to_thread(polls, svc.port or 0, n_polls)
    started = threading.Event()
    reader = asyncio.create_task(asyncio.to_thread(read_events, svc.port or 0, n_events, started))
    await asyncio.to_thread(started.wait, 10)
    t0 = time.perf_counter()
    soc_topic = t.point("battery", 802, "SoC")
    for i in range(n_events):  # 50.0 / 60.0 alternately: beyond the 0.5 % deadband each time
        pub.publish(soc_topic, "50.0" if i % 2 else "60.0", qos=1)
        if i % 200 == 199:
            await asyncio.sleep(0)
    t1 = await reader
    await pub.stop()
    stop.set()
    await task
    return {**poll, "events_per_s": n_events / (t1 - t0)}


def main(n_polls: int = 300, n_events: int = 800) -> dict[str, Any]:
    bare = Bare(n_events + 10)
    base_poll = polls(bare.port, n_polls)
    started = threading.Event()
    box: list[float] = []
    reader = threading.Thread(target=lambda: box.append(read_events(bare.port, n_events, started)))
    reader.start()
    started.wait(10)
    t0 = time.perf_counter()
    bare.feed(n_events)
    reader.join(70)
    base_eps = n_events / (box[0] - t0)
    broker = MosquittoProcess(workdir=Path(tempfile.mkdtemp(prefix="bench-dnp3-")))
    broker.start()
    try:
        result = asyncio.run(ours(broker.port, n_polls, n_events))
    finally:
        broker.cleanup()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"integrity poll ({n_polls}, whole map): bare dnp3py p50 {base_poll['p50_ms']:.2f} ms "
        f"p99 {base_poll['p99_ms']:.2f} ms | edge.dnp3 p50 {result['p50_ms']:.2f} ms "
        f"p99 {result['p99_ms']:.2f} ms"
    )
    print(
        f"events ({n_events}, read by opendnp3 event polls): bare dnp3py fed directly "
        f"{base_eps:.0f} events/s | edge.dnp3 from MQTT {result['events_per_s']:.0f} events/s "
        f"(outstation and service in one process; max RSS {rss_mb:.0f} MB)"
    )
    return {"bare": {**base_poll, "events_per_s": base_eps}, "ours": result}


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    main(*args)
