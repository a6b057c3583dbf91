"""Benchmark: the Modbus adapter against the simulator (in its own process) and a real
Mosquitto. Not part of the default test run.

    .venv/bin/python -m tests.perf.bench_adapter [POLLS]
    .venv/bin/pytest tests/perf/bench_adapter.py -s

Reports, measured in the same run, in CPU time of this process (adapter, paho's thread):
- points decoded per CPU-second (publish by exception) and points decoded and published per
  CPU-second when every point changed, against a bare loop: a pymodbus read of the same
  register blocks and one paho publish per point on the same topics with the same message
  expiry (no decoding, no filter); the ratio of their costs per point;
- how many times each point is published at start-up;
- the resident memory of one `bess-edge adapter` process serving one device, against a bare
  process that imports pymodbus and paho, and where it goes (tracemalloc by package, the
  pysunspec2 model definitions loaded).
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
from tests.mqtt_probe import Probe
from tests.perf import adapter_memory

DEVICES = ("battery", "inverter", "meter")
ROUNDS = 4


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


def _phase() -> dict[str, Any]:
    return {"cpu_s": 0.0, "published": 0, "decoded": 0, "ms": [], "rounds": []}


async def adapter_polls(
    adapters: list[DeviceAdapter], polls: int, force: bool, acc: dict[str, Any]
) -> None:
    """Drive `polls` polls of every adapter (their own loops idle: poll_s 3600). `force`:
    every value counts as changed, so every point is published."""
    pub0 = sum(a.published for a in adapters)
    cpu0 = time.process_time()
    for _ in range(polls):
        s = time.perf_counter()
        for a in adapters:
            if force:
                a.filter.published.clear()
            await a._poll(a.groups)
        acc["ms"].append((time.perf_counter() - s) * 1000)
    cpu = time.process_time() - cpu0
    published = sum(a.published for a in adapters) - pub0
    acc["cpu_s"] += cpu
    acc["published"] += published
    acc["decoded"] += polls * sum(len(a.specs) for a in adapters)
    acc["rounds"].append(cpu / max(1, published or polls * sum(len(a.specs) for a in adapters)))


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


class BareLoop:
    """pymodbus reads of the same blocks and one paho publish per point on the adapter's own
    topics, nothing else. `expiry`: the MQTT 5 message expiry the contract requires, set the
    way a bare loop would (one Properties object for every publish)."""

    def __init__(
        self,
        port: int,
        sim_ports: dict[str, int],
        plan: dict[str, list[tuple[int, int, list[str]]]],
        expiry: int | None,
    ) -> None:
        self.port, self.sim_ports, self.plan = port, sim_ports, plan
        self.props = None
        if expiry is not None:
            self.props = Properties(PacketTypes.PUBLISH)
            self.props.MessageExpiryInterval = expiry
        self.pub = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-bare-{expiry}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.clients: dict[str, AsyncModbusTcpClient] = {}

    async def start(self) -> None:
        self.pub.on_socket_open = lambda _c, _u, s: set_nodelay_sock(s)
        self.pub.connect("127.0.0.1", self.port)
        self.pub.loop_start()
        for n in DEVICES:
            c = AsyncModbusTcpClient(
                "127.0.0.1", port=self.sim_ports[n], timeout=1, retries=0, reconnect_delay=0
            )
            await c.connect()
            set_nodelay(c)
            self.clients[n] = c

    async def polls(self, polls: int, acc: dict[str, Any]) -> None:
        published = 0
        cpu0 = time.process_time()
        for _ in range(polls):
            s = time.perf_counter()
            for n in DEVICES:
                for start, count, topics in self.plan[n]:
                    rr = await self.clients[n].read_holding_registers(
                        start, count=count, device_id=1
                    )
                    regs = rr.registers
                    for j, topic in enumerate(topics):
                        self.pub.publish(
                            topic, str(regs[j % count]), qos=0, retain=True, properties=self.props
                        )
                    published += len(topics)
            acc["ms"].append((time.perf_counter() - s) * 1000)
        cpu = time.process_time() - cpu0
        acc["cpu_s"] += cpu
        acc["published"] += published
        acc["rounds"].append(cpu / published)

    def stop(self) -> None:
        for c in self.clients.values():
            c.close()
        self.pub.disconnect()
        self.pub.loop_stop()


def set_nodelay_sock(sock: Any) -> None:
    import socket

    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def count_startup(port: int, sim_ports: dict[str, int]) -> tuple[int, int]:
    """(point publishes, points) in the first second of fresh adapters (poll_s 3600, so
    nothing but the start-up publish and by-exception changes of the first poll)."""
    probe = Probe("127.0.0.1", port, "bess/bench/#")
    adapters = await _adapters(port, sim_ports)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(a.run(stop)) for a in adapters]
    try:
        for _ in range(200):
            if all(a.online for a in adapters):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.0)
        skip = ("status", "meta", "ts")
        msgs = [m for m in probe.snapshot() if m.topic.rsplit("/", 1)[-1] not in skip]
        msgs = [m for m in msgs if not m.retain or m.topic.split("/")[2] in DEVICES]
        return len(msgs), sum(len(a.specs) for a in adapters)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        probe.close()


def main(polls: int = 200) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-adapter-"))
    broker = MosquittoProcess(workdir=work)
    broker.start()
    parent, child = mp.Pipe()
    sim = mp.get_context("spawn").Process(target=_sim_main, args=(child,), daemon=True)
    sim.start()
    try:
        sim_ports: dict[str, int] = parent.recv()
        startup = asyncio.run(count_startup(broker.port, sim_ports))

        async def run() -> tuple[dict[str, Any], list[float]]:
            adapters = await _adapters(broker.port, sim_ports)
            stop = asyncio.Event()
            tasks = [asyncio.create_task(a.run(stop)) for a in adapters]
            for _ in range(200):
                if all(a.online for a in adapters):
                    break
                await asyncio.sleep(0.02)
            assert all(a.online for a in adapters), "adapters did not come online"
            plan = {
                a.name: [
                    (b.start, b.count, ["bare/" + a.topic_of[p.key] for p in b.points])
                    for g in a.groups
                    for b in g.blocks
                ]
                for a in adapters
            }
            bare = BareLoop(broker.port, sim_ports, plan, None)
            bare_x = BareLoop(broker.port, sim_ports, plan, adapters[0].expiry_s)
            await bare.start()
            await bare_x.start()
            res: dict[str, Any] = {
                "points": sum(len(a.specs) for a in adapters),
                "blocks": sum(len(g.blocks) for a in adapters for g in a.groups),
                "registers": sum(b.count for a in adapters for g in a.groups for b in g.blocks),
            }
            phases = {k: _phase() for k in ("by_exc", "full", "bare", "bare_x")}
            # Interleaved rounds, so a noisy neighbour on a shared machine hits every phase.
            for _ in range(ROUNDS):
                n = polls // ROUNDS
                await adapter_polls(adapters, n, False, phases["by_exc"])
                await adapter_polls(adapters, n, True, phases["full"])
                await bare.polls(n, phases["bare"])
                await bare_x.polls(n, phases["bare_x"])
            bare.stop()
            bare_x.stop()
            stop.set()
            await asyncio.gather(*tasks)
            res.update(phases)
            writes = await bench_writes(
                await _adapters(broker.port, sim_ports), broker.port, min(polls, 100)
            )
            return res, writes

        res, writes = asyncio.run(run())
        bare, bare_x = res["bare"], res["bare_x"]
        site = adapter_memory.write_site(work, broker.port, sim_ports["battery"])
        rss = adapter_memory.rss_of_cli(site, broker.port)
        rss_bare = adapter_memory.rss_of_bare(broker.port, sim_ports["battery"])
        mem = adapter_memory.breakdown(site)
        steps = adapter_memory.import_steps()
    finally:
        parent.send("stop")
        sim.join(10)
        broker.cleanup()
    p, q = statistics.median, percentile
    byx, full = res["by_exc"], res["full"]

    def per_point_us(r: dict[str, Any]) -> float:
        return 1e6 * float(r["cpu_s"]) / int(r["published"] or r["decoded"])

    ratio = per_point_us(full) / per_point_us(bare)
    rounds = sorted(f / b for f, b in zip(full["rounds"], bare["rounds"], strict=True))
    lines = [
        f"adapter: {res['points']} points in {res['blocks']} read blocks ({res['registers']}"
        f" registers, battery+inverter+meter), {polls} polls per phase",
        f"  publish by exception: {byx['decoded'] / byx['cpu_s']:,.0f} points decoded per"
        f" CPU-second ({byx['published']} published); poll p50 {p(byx['ms']):.2f} ms,"
        f" p99 {q(byx['ms'], 0.99):.2f} ms",
        f"  every point changed:  {full['published'] / full['cpu_s']:,.0f} points decoded and"
        f" published per CPU-second, {per_point_us(full):.1f} us per point;"
        f" poll p50 {p(full['ms']):.2f} ms, p99 {q(full['ms'], 0.99):.2f} ms",
        f"bare pymodbus read + paho publish, same blocks and topics, no expiry:"
        f" {bare['published'] / bare['cpu_s']:,.0f} per CPU-second, {per_point_us(bare):.1f} us"
        f" per point; poll p50 {p(bare['ms']):.2f} ms",
        f"  the same with the contract's message expiry (one shared Properties):"
        f" {bare_x['published'] / bare_x['cpu_s']:,.0f} per CPU-second,"
        f" {per_point_us(bare_x):.1f} us per point; poll p50 {p(bare_x['ms']):.2f} ms",
        f"full publish cost per point: {ratio:.2f}x the bare loop without expiry (per round:"
        f" {', '.join(f'{r:.2f}' for r in rounds)}),"
        f" {per_point_us(full) / per_point_us(bare_x):.2f}x the bare loop with expiry"
        " (target <= 1.5x)",
        f"start-up: {startup[0]} point publishes for {startup[1]} points in the first second",
        f"RSS of one `bess-edge adapter` process (one device, battery): {rss / 1024:.1f} MiB;"
        f" bare pymodbus + paho process: {rss_bare / 1024:.1f} MiB",
        f"  traced Python allocations at online: {mem['traced_kib'] / 1024:.1f} MiB, by package"
        f" (KiB): {mem['by_package_kib']}",
        "  RSS after imports (MiB): "
        + ", ".join(f"{name} {kib / 1024:.1f}" for name, kib in steps),
        f"  {mem['modules']} modules loaded; pysunspec2 model definitions loaded:"
        f" {mem['pysunspec2_model_defs']} for device models {mem['device_models']}",
        f"set request round trip (MQTT -> SF read, write, read-back -> reply), {len(writes)}"
        f" sequential: p50 {p(writes):.2f} ms, p99 {q(writes, 0.99):.2f} ms",
    ]
    print("\n".join(lines))
    return {**res, "bare": bare, "bare_expiry": bare_x, "ratio": ratio, "rss_kib": rss}


def test_bench_adapter() -> None:
    main(200)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
