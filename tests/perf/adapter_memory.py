"""Resident memory of one adapter process, and where it goes. Used by bench_adapter.

- `rss_of_cli`: starts the real `bess-edge adapter -c site.toml` for one device, waits for
  its `online`, reads VmRSS from /proc.
- `rss_of_bare`: a process that imports pymodbus and paho and opens one client of each.
- `import_steps`: RSS after each group of imports an adapter process makes.
- `breakdown`: the same adapter run under tracemalloc in a child interpreter: allocated
  memory by package, modules loaded, pysunspec2 model definitions loaded.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.mqtt_probe import Probe

BARE = """
import asyncio, sys, time
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from pymodbus.client import AsyncModbusTcpClient
async def main():
    c = AsyncModbusTcpClient("127.0.0.1", port=int(sys.argv[2]))
    await c.connect()
    await c.read_holding_registers(40000, count=2, device_id=1)
    m = paho.Client(CallbackAPIVersion.VERSION2)
    m.connect("127.0.0.1", int(sys.argv[1]))
    m.loop_start()
    print("ready", flush=True)
    await asyncio.sleep(30)
asyncio.run(main())
"""

TRACED = """
import asyncio, json, sys, tracemalloc
tracemalloc.start()
from edge.config import load_site
from adapters.modbus.service import make_adapters
async def main():
    (adapter,) = make_adapters(load_site(sys.argv[1]))
    stop = asyncio.Event()
    task = asyncio.create_task(adapter.run(stop))
    for _ in range(500):
        if adapter.online:
            break
        await asyncio.sleep(0.01)
    snap = tracemalloc.take_snapshot()
    by: dict[str, int] = {}
    for stat in snap.statistics("filename"):
        f = stat.traceback[0].filename
        parts = f.split("/site-packages/", 1)
        if len(parts) == 2:
            key = parts[1].split("/", 1)[0]
        elif "/lib/python3" in f:
            key = "stdlib"
        else:
            key = "/".join(Path(f).parts[-3:-1]) if "/wt/" in f or "/work/" in f else f
        by[key] = by.get(key, 0) + stat.size
    from sunspec2 import device as ss_device
    out = {
        "traced_kib": sum(by.values()) // 1024,
        "by_package_kib": {k: v // 1024 for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:8]},
        "modules": len(sys.modules),
        "pysunspec2_model_defs": sorted({k[0] for k in ss_device.model_defs_cache}),
        "device_models": adapter.meta["models"],
    }
    stop.set()
    await task
    print(json.dumps(out), flush=True)
from pathlib import Path
asyncio.run(main())
"""


IMPORTS = """
import re
def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
steps = [("python", rss())]
import paho.mqtt.client, pymodbus.client
steps.append(("+ paho, pymodbus client", rss()))
import adapters.modbus.service
steps.append(("+ the adapter's own modules", rss()))
import adapters.simulator.config
steps.append(("+ the simulator's config section (its package)", rss()))
from edge.config.site import registered_sections
registered_sections()
steps.append(("+ every other site-file section", rss()))
from edge.services import service_factory
service_factory("adapter")
steps.append(("+ the adapter service, the only one this process loads", rss()))
print(steps)
"""


def import_steps() -> list[tuple[str, int]]:
    """RSS (KiB) after each group of imports an adapter process makes."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
    out = subprocess.run(
        [sys.executable, "-c", IMPORTS], capture_output=True, text=True, timeout=60, env=env
    )
    steps: list[tuple[str, int]] = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    return steps


def write_site(tmp: Path, broker_port: int, device_port: int) -> Path:
    path = tmp / "one-adapter.toml"
    path.write_text(
        f"""[site]
id = "rss"

[broker]
host = "127.0.0.1"
port = {broker_port}

[[devices]]
name = "battery"
kind = "sunspec"
port = {device_port}
"""
    )
    return path


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def rss_of_cli(site: Path, broker_port: int) -> int:
    probe = Probe("127.0.0.1", broker_port, "bess/rss/battery/status")
    exe = Path(sys.executable).parent / "bess-edge"
    proc = subprocess.Popen(
        [str(exe), "adapter", "-c", str(site)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        probe.wait_for("bess/rss/battery/status", lambda m: m.payload == b"online", timeout=20)
        time.sleep(1.0)  # a few polls and the first refresh
        return _rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
        probe.close()


def rss_of_bare(broker_port: int, device_port: int) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-c", BARE, str(broker_port), str(device_port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        return _rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def breakdown(site: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
    out = subprocess.run(
        [sys.executable, "-c", TRACED, str(site)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
