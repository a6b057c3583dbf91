"""Runs the simulator (or other Modbus servers) and the Modbus adapters on an asyncio loop
in a background thread, so tests can use the synchronous MQTT Probe while the site runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from adapters.modbus.device import DeviceAdapter
from adapters.modbus.service import make_adapters
from adapters.simulator import SiteSimulator
from edge.config import parse_site

T = TypeVar("T")
SITE = "t"


class LoopThread:
    """An asyncio loop in a background thread, for tests that stay synchronous."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def _event(self) -> asyncio.Event:
        return asyncio.Event()

    def call(self, coro: Any, timeout: float = 20.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def do(self, fn: Callable[..., T], *args: Any, timeout: float = 5.0) -> T:
        """Run a plain function on the loop (the servers there are not thread-safe)."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return fut.result(timeout)

    def run_adapters(self, site: Any) -> None:
        """Start one adapter per `[[devices]]` table of a parsed site."""
        self.adapters: dict[str, DeviceAdapter] = {a.name: a for a in make_adapters(site)}
        self.stop_event: asyncio.Event = self.call(self._event())
        self.tasks = [
            asyncio.run_coroutine_threadsafe(a.run(self.stop_event), self.loop)
            for a in self.adapters.values()
        ]

    def stop_adapters(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        for t in self.tasks:
            with contextlib.suppress(Exception):  # still stop the servers
                t.result(15)

    def stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class SiteRunner(LoopThread):
    """`SiteRunner(broker, sim_devices, devices)`; `devices` are `[[devices]]` tables whose
    `port` is filled in from the simulated device named by `sim` (default: same name)."""

    def __init__(
        self,
        broker: Any,
        sim_devices: list[Any],
        devices: list[Any],
        run_physics: bool = False,
        keepalive: int = 2,
    ) -> None:
        super().__init__()
        self.broker = broker
        self.sim: SiteSimulator = self.call(self._start_sim(sim_devices, run_physics))
        tables = []
        for d in devices:
            d = dict(d)
            sim_name = d.pop("sim", d["name"])
            if "port" not in d:
                d["port"] = self.sim.port(sim_name)
            tables.append(d)
        self.site = parse_site(
            {
                "site": {"id": SITE},
                "broker": {"host": broker.host, "port": broker.port, "keepalive": keepalive},
                "devices": tables,
            }
        )
        self.run_adapters(self.site)

    async def _start_sim(self, devices: list[dict[str, Any]], run_physics: bool) -> SiteSimulator:
        sim = SiteSimulator({"devices": devices}, site=SITE)
        await sim.start(run_physics=run_physics)
        return sim

    def inject(self, device: str, action: str, body: dict[str, Any] | None = None) -> Any:
        return self.do(self.sim.inject, device, action, body or {})

    def value(self, device: str, model: int | str, point: str) -> Any:
        return self.do(self.sim.value, device, model, point)

    def close(self) -> None:
        try:
            self.stop_adapters()
            self.call(self.sim.stop())
        finally:
            self.stop_loop()

    def __enter__(self) -> SiteRunner:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
