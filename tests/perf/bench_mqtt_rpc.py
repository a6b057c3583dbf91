"""Benchmark: MQTT 5 request/response round trip through edge.mqtt (serve + Requester) on a
real local Mosquitto. Prints p50/p99 and throughput. Not part of the default test run.

    .venv/bin/python -m tests.perf.bench_mqtt_rpc [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edge.mosquitto import MosquittoProcess
from edge.mqtt import BrokerSettings, MqttClient, Requester, Topics, serve
from edge.mqtt.rpc import Request


def percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


async def run(port: int, n: int) -> dict[str, float]:
    topics = Topics("bench")
    settings = BrokerSettings(port=port)
    server = MqttClient(settings, "bench-server")

    async def echo(req: Request) -> dict[str, Any]:
        return {"value": req.body.get("value")}

    serve(server, topics.set_filter("dev"), echo)
    await server.start()
    client = MqttClient(settings, "bench-client")
    requester = Requester(client, topics)
    await client.start()
    await asyncio.sleep(0.2)
    lat: list[float] = []
    t0 = time.perf_counter()
    for i in range(n):
        s = time.perf_counter()
        reply = await requester.request(topics.set("dev", 704, "WSet"), {"value": i}, timeout=5)
        lat.append((time.perf_counter() - s) * 1000)
        assert reply["ok"] and reply["value"] == i
    total = time.perf_counter() - t0
    await client.stop()
    await server.stop()
    return {
        "n": n,
        "p50_ms": statistics.median(lat),
        "p99_ms": percentile(lat, 0.99),
        "max_ms": max(lat),
        "req_per_s": n / total,
    }


def main(n: int = 2000) -> dict[str, float]:
    broker = MosquittoProcess(workdir=Path(tempfile.mkdtemp(prefix="bench-")))
    broker.start()
    try:
        result = asyncio.run(run(broker.port, n))
    finally:
        broker.cleanup()
    print(
        f"MQTT request/response via edge.mqtt, {result['n']} sequential requests: "
        f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, "
        f"max {result['max_ms']:.2f} ms, {result['req_per_s']:.0f} req/s"
    )
    return result


def test_bench_mqtt_rpc() -> None:
    main()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
