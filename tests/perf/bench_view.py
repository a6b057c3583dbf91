"""Benchmark: the live view. The server's CPU and memory with 0, 1 and 10 open event streams
while telemetry arrives at full rate (0 streams is the baseline: ingesting alone); the page's
first render time in headless Chromium against a bare static file from the same server; and
the page's JS heap while it stays open under that load.

    .venv/bin/python -m tests.perf.bench_view [SECONDS_PER_STEP]

Full rate: 3 devices x 40 points, every point changing every 100 ms (1200 messages/s), plus
the controller state at 1 Hz; the adapters publish by exception, so a real site sends less.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

from edge.mosquitto import MosquittoProcess, free_port
from edge.mqtt import BrokerSettings, MqttClient
from tests.browser.chromium import CHROMIUM, browser_page

EXE = str(Path(sys.executable).with_name("bess-edge"))
DEVICES = {"battery": "802", "inverter": "701", "meter": "203"}
POINTS = ["W", "SoC", "V", "Hz", "State", "St"] + [f"P{i}" for i in range(34)]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Telemetry(threading.Thread):
    """Publishes the full-rate tree until stopped; counts messages."""

    def __init__(self, client: MqttClient) -> None:
        super().__init__(daemon=True)
        self.client, self.stop, self.sent = client, threading.Event(), 0

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            t = time.monotonic()
            for dev, model in DEVICES.items():
                for p in POINTS:
                    v = 50 + (n % 100) / 10 if p == "SoC" else n % 5000
                    self.client.publish(f"bess/bench/{dev}/{model}/{p}", str(v), retain=False)
                    self.sent += 1
                if n % 10 == 0:
                    self.client.publish(f"bess/bench/{dev}/ts", str(time.time()))
                    self.client.publish(f"bess/bench/{dev}/status", "online")
            if n % 10 == 0:
                state = {"state": "charging", "soc": 50.0, "setpoint": {"applied_w": -n},
                         "limits": {"charge_w": 5e4, "discharge_w": 5e4}, "faults": [],
                         "ts": time.time()}  # fmt: skip
                self.client.publish("bess/bench/controller/state", json.dumps(state))
            n += 1
            self.stop.wait(max(0.0, 0.1 - (time.monotonic() - t)))


async def streams(url: str, n: int, seconds: float, pid: int) -> dict[str, float]:
    received = [0] * n

    async def reader(i: int, http: aiohttp.ClientSession) -> None:
        async with http.get(f"{url}/api/stream") as r:
            async for chunk in r.content.iter_any():
                received[i] += len(chunk)

    async with aiohttp.ClientSession() as http:
        tasks = [asyncio.create_task(reader(i, http)) for i in range(n)]
        await asyncio.sleep(1.0)
        c0, t0 = cpu_s(pid), time.monotonic()
        r0 = sum(received)
        await asyncio.sleep(seconds)
        c1, t1 = cpu_s(pid), time.monotonic()
        r1 = sum(received)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "cpu_pct": 100 * (c1 - c0) / (t1 - t0),
        "kb_per_s_per_stream": (r1 - r0) / (t1 - t0) / 1024 / max(1, n),
        "rss_mb": rss_mb(pid),
    }


async def first_render(url: str, runs: int = 5) -> tuple[list[float], list[float]]:
    page_ms: list[float] = []
    bare_ms: list[float] = []
    async with browser_page() as page:
        for _ in range(runs):
            await page.goto("about:blank")
            t = time.perf_counter()
            await page.goto(f"{url}/static/uPlot.VERSION")
            bare_ms.append((time.perf_counter() - t) * 1000)
            await page.goto("about:blank")
            t = time.perf_counter()
            await page.goto(url)
            await page.wait_for_function(
                "document.querySelector('#state').dataset.state === 'charging'"
                " && document.querySelector('#soc').textContent !== '—'"
            )
            page_ms.append((time.perf_counter() - t) * 1000)
    return page_ms, bare_ms


async def page_heap(url: str, seconds: float) -> list[float]:
    out: list[float] = []
    async with browser_page() as page:
        await page.goto(url)
        cdp = await page.context.new_cdp_session(page)
        for _ in range(4):
            await asyncio.sleep(seconds / 3 if out else 2.0)
            await cdp.send("HeapProfiler.collectGarbage")
            out.append((await cdp.send("Runtime.getHeapUsage"))["usedSize"] / 1e6)
    return out


async def run(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as d:
        broker = MosquittoProcess(workdir=Path(d) / "mq")
        broker.start()
        port = free_port()
        site = Path(d) / "site.toml"
        site.write_text(
            f'[site]\nid = "bench"\n[broker]\nport = {broker.port}\n[controller]\n'
            f"[view]\nport = {port}\n"
        )
        server = subprocess.Popen([EXE, "view", "-c", str(site)], stderr=subprocess.DEVNULL)
        pub = MqttClient(BrokerSettings(port=broker.port), "bench-pub")
        await pub.start()
        tele = Telemetry(pub)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                with contextlib.suppress(OSError):
                    async with aiohttp.ClientSession() as http, http.get(f"{url}/api/me"):
                        break
                await asyncio.sleep(0.1)
            idle = await streams(url, 0, 2.0, server.pid)
            tele.start()
            print(f"telemetry: {len(DEVICES) * len(POINTS) * 10} messages/s; server idle "
                  f"{idle['cpu_pct']:.1f} % CPU, {idle['rss_mb']:.0f} MB")  # fmt: skip
            print("open streams   server CPU (% of one core)   KiB/s per stream   server RSS MB")
            for n in (0, 1, 10):
                r = await streams(url, n, seconds, server.pid)
                print(f"{n:>12}   {r['cpu_pct']:>26.1f}   {r['kb_per_s_per_stream']:>16.1f}"
                      f"   {r['rss_mb']:>13.1f}")  # fmt: skip
            if Path(CHROMIUM).exists():
                page_ms, bare_ms = await first_render(url)
                print(f"first render (goto -> state and SoC shown), 5 runs: p50 "
                      f"{statistics.median(page_ms):.0f} ms, max {max(page_ms):.0f} ms; "
                      f"bare static file from the same server: p50 "
                      f"{statistics.median(bare_ms):.0f} ms")  # fmt: skip
                heap = await page_heap(url, seconds * 2)
                print(
                    "page JS heap after GC while open under full rate (MB): "
                    + ", ".join(f"{h:.2f}" for h in heap)
                )
            print(f"server RSS at the end: {rss_mb(server.pid):.1f} MB")
        finally:
            tele.stop.set()
            tele.join(5)
            await pub.stop()
            server.terminate()
            server.wait(10)
            broker.stop()


def main(seconds: float = 8.0) -> None:
    asyncio.run(run(seconds))


if __name__ == "__main__":
    main(*(float(a) for a in sys.argv[1:]))
