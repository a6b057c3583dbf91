"""Services and commands are plugged into `bess-edge` through entry points.

`edge` never imports `adapters`: the simulator and the adapters register themselves in
pyproject.toml under these groups, and the CLI finds them at run time.

- group `bess_edge.services`: name -> factory `(SiteConfig) -> list[Service]`. A factory returns
  `[]` when the site file has nothing for it. `bess-edge {name} -c site.toml` runs one service;
  `run` runs all but the simulator; `demo` also starts a broker and the simulator.
- group `bess_edge.commands`: name -> `register(subparsers)`, for one-shot commands such as
  `inject`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Protocol

from edge.config.site import SiteConfig

SERVICE_GROUP = "bess_edge.services"
COMMAND_GROUP = "bess_edge.commands"
# Start order for `run`/`demo`: devices first, then what depends on their topics.
SERVICE_ORDER = ("sim", "adapter", "bridge", "controller")


READY_TIMEOUT_S = 10.0


class Service(Protocol):
    """A long-running part of the stack. `run` returns when `stop` is set, after cleaning up.

    A service that others depend on (the simulator's Modbus servers) may also have a `ready`
    attribute, an asyncio.Event it sets once it serves; `run_services` waits for it before
    starting the next service, so adapters do not begin by failing to connect.
    """

    name: str

    async def run(self, stop: asyncio.Event) -> None: ...


ServiceFactory = Callable[[SiteConfig], list[Service]]


def service_names() -> list[str]:
    """Every registered service, in start order, without importing any of them."""
    return sorted({ep.name for ep in entry_points(group=SERVICE_GROUP)}, key=_order)


def service_factory(name: str) -> ServiceFactory:
    """Import one service's factory. A process imports only the services it runs, which
    keeps one adapter process from carrying the bridge, the simulator and the rest."""
    (ep,) = entry_points(group=SERVICE_GROUP, name=name)
    factory: ServiceFactory = ep.load()
    return factory


def service_factories() -> dict[str, ServiceFactory]:
    return {name: service_factory(name) for name in service_names()}


def _order(name: str) -> int:
    return SERVICE_ORDER.index(name) if name in SERVICE_ORDER else len(SERVICE_ORDER)


async def run_services(services: list[Service], stop: asyncio.Event) -> None:
    """Run services until `stop` is set or one of them fails; then stop them all."""
    tasks: list[asyncio.Task[None]] = []
    for svc in services:
        task = asyncio.create_task(svc.run(stop), name=svc.name)
        tasks.append(task)
        ready: asyncio.Event | None = getattr(svc, "ready", None)
        if ready is not None:
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait(
                [waiter, task], timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
    if not tasks:
        return
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    stopper.cancel()
    for svc, res in zip(services, results, strict=True):
        if isinstance(res, BaseException) and not isinstance(res, asyncio.CancelledError):
            raise RuntimeError(f"service {svc.name} failed: {res}") from res
