"""Benchmark: the Modbus adapter against the simulator (in its own process) and a real
Mosquitto. Not part of the default test run.

    .venv/bin/python -m tests.perf.bench_adapter [POLLS]
    .venv/bin/pytest tests/perf/bench_adapter.py -s

Reports, measured in the same run:
- points published per second per core (adapter process CPU time: decode, filter, paho);
- the time per poll of the whole battery + inverter + meter, against a bare pymodbus read of
  the same register blocks plus one bare paho publish per point (no decoding, no filter).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pymodbus.client import AsyncModbusTcpClient

from adapters.modbus.bus import set_nodelay
from adapters.modbus.device import DeviceAdapter
from adapters.modbus.service import make_adapters
from edge.config import parse_site
from edge.mosquitto import MosquittoProcess

DEVICES = ("battery", "inverter", "meter")


def percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def _sim_main(conn: Any) -> None:
    from adapters.simulator import SiteSimulator

    async def main() -> None:
        sim = SiteSimulator(
            {
                "devices": [
                    {"name": "battery", "kind": "battery"},
                    {"name": "inverter", "kind": "inverter"},
                    {"name": "meter", "kind": "meter"},
                ]
            },
            site="bench",
        )
        await sim.start(run_physics=True)
        conn.send(sim.ports)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await sim.stop()

    asyncio.run(main())


async def _adapters(port: int, sim_ports: dict[str, int]) -> list[DeviceAdapter]:
    site = parse_site(
        {
            "site": {"id": "bench"},
            "broker": {"host": "127.0.0.1", "port": port},
            "devices": [
                {
                    "name": n,
                    "kind": "sunspec",
                    "port": sim_ports[n],
                    "poll_s": 3600,
                    "offline_budget_s": 600,
                }
                for n in DEVICES
            ],
        }
    )
    return make_adapters(site)


async def bench_adapter(adapters: list[DeviceAdapter], polls: int) -> dict[str, Any]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(a.run(stop)) for a in adapters]
    for _ in range(200):
        if all(a.online for a in adapters):
            break
        await asyncio.sleep(0.02)
    assert all(a.online for a in adapters), "adapters did not come online"
    # The adapters' own loops idle (poll_s 3600); we drive polls directly and time them.
    by_exc: list[float] = []
    full: list[float] = []
    npoints = sum(len(a.specs) for a in adapters)
    pub0 = sum(a.published for a in adapters)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(polls):
        force = i % 2 == 1  # every other poll publishes every point (as a full refresh does)
        s = time.perf_counter()
        for a in adapters:
            if force:
                a.filter.published.clear()  # every value counts as changed
            await a._poll(a.groups)
        (full if force else by_exc).append((time.perf_counter() - s) * 1000)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    published = sum(a.published for a in adapters) - pub0
    stop.set()
    await asyncio.gather(*tasks)
    return {
        "points": npoints,
        "blocks": sum(len(g.blocks) for a in adapters for g in a.groups),
        "published": published,
        "decoded": npoints * polls,
        "cpu_s": cpu,
        "wall_s": wall,
        "by_exc_ms": by_exc,
        "full_ms": full,
    }


async def bench_writes(adapters: list[DeviceAdapter], port: int, n: int) -> list[float]:
    """Set request round trip: MQTT request -> SF read, Modbus write, read-back -> reply."""
    from edge.mqtt import BrokerSettings, MqttClient, Requester, Topics

    stop = asyncio.Event()
    tasks = [asyncio.create_task(a.run(stop)) for a in adapters]
    client = MqttClient(BrokerSettings(port=port), client_id="bench-writer")
    await client.start()
    req = Requester(client, Topics("bench"))
    lat: list[float] = []
    try:
        for _ in range(200):
            if all(a.online for a in adapters):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        for i in range(n):
            s = time.perf_counter()
            r = await req.request("bess/bench/inverter/set/704/WSet", {"value": 1000 + i})
            lat.append((time.perf_counter() - s) * 1000)
            assert r["ok"], r
    finally:
        await client.stop()
        stop.set()
        await asyncio.gather(*tasks)
    return lat


async def bench_bare(
    port: int,
    sim_ports: dict[str, int],
    plan: dict[str, list[tuple[int, int, int]]],
    polls: int,
    expiry: bool = False,
) -> list[float]:
    """pymodbus reads of the same blocks and one paho publish per point, nothing else.

    `expiry`: give each publish the MQTT 5 message expiry the contract requires (paho needs
    a Properties object per publish), to tell the contract's cost from the adapter's."""
    pub = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=MQTTProtocolVersion.MQTTv5
    )
    pub.on_socket_open = lambda _c, _u, s: set_nodelay_sock(s)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    clients = {}
    for n in DEVICES:
        c = AsyncModbusTcpClient(
            "127.0.0.1", port=sim_ports[n], timeout=1, retries=0, reconnect_delay=0
        )
        await c.connect()
        set_nodelay(c)
        clients[n] = c
    lat: list[float] = []
    try:
        for _ in range(polls):
            s = time.perf_counter()
            for n in DEVICES:
                for start, count, npts in plan[n]:
                    rr = await clients[n].read_holding_registers(start, count=count, device_id=1)
                    regs = rr.registers
                    for j in range(npts):
                        props = None
                        if expiry:
                            props = Properties(PacketTypes.PUBLISH)
                            props.MessageExpiryInterval = 30
                        pub.publish(
                            f"bench/bare/{n}/{start}/{j}",
                            str(regs[j % count]),
                            qos=0,
                            retain=True,
                            properties=props,
                        )
            lat.append((time.perf_counter() - s) * 1000)
    finally:
        for c in clients.values():
            c.close()
        pub.disconnect()
        pub.loop_stop()
    return lat


def set_nodelay_sock(sock: Any) -> None:
    import socket

    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def main(polls: int = 400) -> dict[str, Any]:
    broker = MosquittoProcess(workdir=Path(tempfile.mkdtemp(prefix="bench-adapter-")))
    broker.start()
    parent, child = mp.Pipe()
    sim = mp.get_context("spawn").Process(target=_sim_main, args=(child,), daemon=True)
    sim.start()
    try:
        sim_ports: dict[str, int] = parent.recv()

        async def run() -> tuple[dict[str, Any], list[float], list[float], list[float]]:
            adapters = await _adapters(broker.port, sim_ports)
            res = await bench_adapter(adapters, polls)
            plan = {
                a.name: [(b.start, b.count, len(b.points)) for g in a.groups for b in g.blocks]
                for a in adapters
            }
            bare = await bench_bare(broker.port, sim_ports, plan, polls // 2)
            bare_x = await bench_bare(broker.port, sim_ports, plan, polls // 2, expiry=True)
            writes = await bench_writes(await _adapters(broker.port, sim_ports), broker.port, polls)
            return res, bare, bare_x, writes

        res, bare, bare_x, writes = asyncio.run(run())
    finally:
        parent.send("stop")
        sim.join(10)
        broker.cleanup()
    p = statistics.median
    per_core = res["published"] / res["cpu_s"]
    q = percentile
    byx, fullm = res["by_exc_ms"], res["full_ms"]
    lines = [
        f"adapter: {res['points']} points in {res['blocks']} read blocks"
        f" (battery+inverter+meter), {polls} polls",
        f"  published {res['published']} points, decoded {res['decoded']},"
        f" CPU {res['cpu_s']:.2f} s (wall {res['wall_s']:.2f} s)",
        f"  {per_core:,.0f} points published/s per core,"
        f" {res['decoded'] / res['cpu_s']:,.0f} points decoded/s per core",
        f"  poll, publish by exception: p50 {p(byx):.2f} ms, p99 {q(byx, 0.99):.2f} ms",
        f"  poll, publish every point:  p50 {p(fullm):.2f} ms, p99 {q(fullm, 0.99):.2f} ms",
        f"bare pymodbus read + paho publish of the same registers:"
        f" p50 {p(bare):.2f} ms, p99 {q(bare, 0.99):.2f} ms",
        f"  the same with a message expiry on each publish:"
        f" p50 {p(bare_x):.2f} ms, p99 {q(bare_x, 0.99):.2f} ms",
        f"overhead per poll (publish every point vs bare): p50 {p(fullm) - p(bare):+.2f} ms,"
        f" p99 {q(fullm, 0.99) - q(bare, 0.99):+.2f} ms;"
        f" vs bare with expiry: p50 {p(fullm) - p(bare_x):+.2f} ms,"
        f" p99 {q(fullm, 0.99) - q(bare_x, 0.99):+.2f} ms",
        f"set request round trip (MQTT -> SF read, write, read-back -> reply), {len(writes)}"
        f" sequential: p50 {p(writes):.2f} ms, p99 {q(writes, 0.99):.2f} ms",
    ]
    print("\n".join(lines))
    return {
        **res,
        "bare_ms": bare,
        "bare_expiry_ms": bare_x,
        "per_core": per_core,
        "write_ms": writes,
    }


def test_bench_adapter() -> None:
    main(200)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
