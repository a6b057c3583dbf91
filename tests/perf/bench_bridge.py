"""Benchmark: the devices' polling path of the 2030.5 bridge, GET DERControlList over TLS 1.2
(ECDHE-ECDSA-AES128-CCM8, client certificates) with keep-alive, bridge and real Mosquitto on
loopback. Not part of the default test run.

    .venv/bin/python -m tests.perf.bench_bridge [REQUESTS] [CLIENTS]
    .venv/bin/pytest tests/perf/bench_bridge.py -s

Reports requests/s and p50/p99 latency for one keep-alive connection, then for CLIENTS devices
polling at once (each its own certificate and connection), plus the TLS handshake cost and the
process's peak RSS. The list holds a few controls, as a device would see in practice.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from edge.bridge.config import BridgeDevice
from tests.broker import make_broker
from tests.integration.test_bridge_exchange import SETTINGS, bridge_cfg, running_bridge, session_for
from tests.integration.test_bridge_pki import make_pki


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


async def poll(base: str, pki: Any, name: str, n: int, href: str) -> tuple[list[float], int]:
    lat: list[float] = []
    connector = aiohttp.TCPConnector(ssl=pki.client_context(name), limit=1, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as s:
        async with s.get(base + href) as r:  # handshake outside the measurement
            await r.read()
        for _ in range(n):
            t0 = time.perf_counter()
            async with s.get(base + href, params={"l": "10"}) as r:
                body = await r.read()
                assert r.status == 200 and b"DERControl" in body
            lat.append(time.perf_counter() - t0)
        return lat, len(body)


async def handshakes(base: str, pki: Any, name: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with session_for(pki, name) as s, s.get(base + "/tm") as r:
            await r.read()
        out.append(time.perf_counter() - t0)
    return out


def report(label: str, lat: list[float], wall: float) -> None:
    print(
        f"{label:<38} {len(lat) / wall:8.0f} req/s   p50 {statistics.median(lat) * 1e3:6.2f} ms"
        f"   p99 {pct(lat, 0.99) * 1e3:6.2f} ms   max {max(lat) * 1e3:6.2f} ms"
    )


def main(n: int = 2000, clients: int = 4) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        names = [f"d{i}" for i in range(clients)]
        pki = make_pki(Path(tmp) / "pki", *names)
        broker = make_broker(Path(tmp) / "mosquitto")
        try:
            devices = tuple(BridgeDevice(nm, pki.lfdi(nm), pki.sfdi(nm), None) for nm in names)
            with running_bridge(bridge_cfg(pki, devices=devices), broker) as svc:
                base = f"https://127.0.0.1:{svc.port}"
                href = "/edev/1/derp/1/derc"

                async def setup() -> None:
                    for i, nm in enumerate(names):
                        async with session_for(pki, nm) as s:
                            r = await s.put(f"{base}/edev/{i + 1}/der/1/derg", data=SETTINGS)
                            assert r.status == 204
                    for nm in names:
                        for k in range(3):
                            svc.core.set_derc(
                                nm,
                                {"start": int(time.time()) + 3600 * k, "duration": 600,
                                 "opModTargetW": -1000 * (k + 1)},
                            )  # fmt: skip

                asyncio.run(setup())
                lat, size = asyncio.run(poll(base, pki, names[0], n, href))
                print(f"GET {href} ({size} bytes, 3 DERControls), {n} requests")
                t0 = time.perf_counter()
                lat, _ = asyncio.run(poll(base, pki, names[0], n, href))
                report("1 device, keep-alive", lat, time.perf_counter() - t0)

                async def many() -> list[float]:
                    res = await asyncio.gather(
                        *(poll(base, pki, nm, n // clients, f"/edev/{i + 1}/derp/1/derc")
                          for i, nm in enumerate(names))
                    )  # fmt: skip
                    return [x for r in res for x in r[0]]

                t0 = time.perf_counter()
                lat = asyncio.run(many())
                report(f"{clients} devices at once, keep-alive", lat, time.perf_counter() - t0)
                hs = asyncio.run(handshakes(base, pki, names[0], 50))
                p50, p99 = statistics.median(hs) * 1e3, pct(hs, 0.99) * 1e3
                print(f"new TLS connection + GET /tm: p50 {p50:.2f} ms  p99 {p99:.2f} ms")
        finally:
            broker.cleanup()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the benchmark process (bridge + clients): {rss:.0f} MiB")


def test_bench_bridge() -> None:
    main(1000, 4)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
