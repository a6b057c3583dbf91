"""Benchmark: 2030.5 notifications to 100 subscribed devices over TLS 1.2 (client certificates).

    .venv/bin/python -m tests.perf.bench_notify [DEVICES] [ROUNDS]

Each device subscribes to its DERControlList with its own HTTPS endpoint URL (all served by one
local aiohttp server). Each round a DERControl goes to every device through the core's set
path; the core queues one Notification per subscription and the notifier POSTs them. Reports
notifications/s and the p50/p99 from the control to the endpoint receiving it, against a bare
baseline measured in the same run: the same POSTs, same TLS, same body, without the bridge.
Not part of the default test run.
"""

from __future__ import annotations

import asyncio
import resource
import ssl
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
from aiohttp import web

from edge.bridge.config import BridgeConfig, BridgeDevice, BridgeTls
from edge.bridge.core import BridgeCore
from edge.bridge.identity import sfdi_from_lfdi
from edge.bridge.notify import Notifier, NotifySettings, client_context
from edge.bridge.pki import make_pki
from edge.mosquitto import free_port

NS = "urn:ieee:std:2030.5:ns"


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def report(label: str, rate: float, lat: list[float]) -> None:
    p50, p99 = statistics.median(lat) * 1e3, pct(lat, 0.99) * 1e3
    print(f"{label:<42} {rate:7.0f} notifications/s   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms")


def sub_doc(resource: str, uri: str) -> bytes:
    return (
        f'<Subscription xmlns="{NS}"><subscribedResource>{resource}</subscribedResource>'
        f"<encoding>0</encoding><level>+S1</level><limit>5</limit>"
        f"<notificationURI>{uri}</notificationURI></Subscription>"
    ).encode()


async def run(devices: int, rounds: int, tmp: Path) -> None:
    pki = make_pki(tmp / "pki")
    cert, key = pki.server
    tls = BridgeTls(str(cert), str(key), str(pki.ca))
    lfdis = [f"{i:040x}" for i in range(1, devices + 1)]
    cfg = replace(
        BridgeConfig(tls=tls),
        devices=tuple(BridgeDevice(f"d{i}", lf, sfdi_from_lfdi(lf)) for i, lf in enumerate(lfdis)),
    )
    core = BridgeCore(cfg, time.time)
    port = free_port()
    arrived: dict[str, float] = {}
    got = asyncio.Event()
    expect = 0

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        arrived[request.match_info["dev"]] = time.perf_counter()
        if len(arrived) >= expect:
            got.set()
        return web.Response(status=204)

    sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    sctx.load_cert_chain(str(cert), str(key))
    sctx.verify_mode = ssl.CERT_REQUIRED
    app = web.Application()
    app.router.add_post("/n/{dev}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=sctx).start()
    for i, lf in enumerate(lfdis):
        uri = f"https://127.0.0.1:{port}/n/d{i}"
        r = core.handle(
            "POST", f"/edev/{i + 1}/sub", {}, sub_doc(f"/edev/{i + 1}/derp/1/derc", uri), lf
        )
        assert r.status == 201, r
    notifier = Notifier(client_context(tls), NotifySettings(workers=8))
    await notifier.start()
    lat: list[float] = []
    body_size = 0
    t_all = 0.0
    for _ in range(rounds):
        arrived.clear()
        got.clear()
        expect = devices
        t0 = time.perf_counter()
        for i in range(devices):
            core.control(f"d{i}", "derc", {"duration": 600, "opModExpLimW": 1000 + i})
        for n in core.server.outbox:
            body_size = len(n.body)
            notifier.submit(n)
        core.server.outbox.clear()
        await asyncio.wait_for(got.wait(), 30)
        t_all += time.perf_counter() - t0
        lat += [t - t0 for t in arrived.values()]
    await notifier.stop()
    assert notifier.stats["failed"] == 0 and notifier.stats["dropped"] == 0, notifier.stats
    n_total = devices * rounds
    print(f"{devices} subscribed devices x {rounds} rounds, Notification {body_size} bytes")
    report("bridge (core + notifier, 8 workers)", n_total / t_all, lat)

    # baseline: the same POSTs with the same TLS, straight from aiohttp, 8 at a time
    body = b"x" * body_size
    lat0: list[float] = []
    t_all0 = 0.0
    conn = aiohttp.TCPConnector(ssl=client_context(tls), limit=16)
    async with aiohttp.ClientSession(connector=conn) as s:
        sem = asyncio.Semaphore(8)

        async def post(i: int, t0: float) -> None:
            async with sem, s.post(f"https://127.0.0.1:{port}/n/d{i}", data=body) as r:
                await r.read()
            lat0.append(time.perf_counter() - t0)

        for _ in range(rounds):
            arrived.clear()
            t0 = time.perf_counter()
            await asyncio.gather(*(post(i, t0) for i in range(devices)))
            t_all0 += time.perf_counter() - t0
    report("baseline (bare aiohttp POSTs, 8 at once)", n_total / t_all0, lat0)
    await runner.cleanup()


def main(devices: int = 100, rounds: int = 10) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(devices, rounds, Path(tmp)))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the benchmark process (bridge + endpoint): {rss:.0f} MiB")


def test_bench_notify() -> None:
    main(20, 3)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
