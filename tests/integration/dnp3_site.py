"""The whole simulated site (tests/integration/controller_site.py) plus the DNP3 outstation,
on a free port, over the real broker: `async with Dnp3Site(broker, master_timeout_s=2) as s:`."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from edge.dnp3.config import Dnp3Schema
from edge.dnp3.service import Dnp3Service
from edge.mqtt import jsonutil
from edge.mqtt.client import Message
from tests.integration.controller_site import SITE, ControllerSite, T


class Dnp3Site:
    def __init__(
        self,
        broker: Any,
        time_scale: float = 20.0,
        meter: dict[str, Any] | None = None,
        **dnp3: Any,
    ) -> None:
        """`meter`: also simulate the site meter (its `grid` injection steps V and Hz)."""
        self.site = ControllerSite(broker, "sunspec_704", time_scale=time_scale, meter=meter)
        self.cfg = Dnp3Schema().load({"enabled": True, "port": 0, **dnp3})
        self.stop = asyncio.Event()
        self.dnp3_state: dict[str, Any] | None = None

    async def __aenter__(self) -> Dnp3Site:
        await self.site.__aenter__()
        self.svc = Dnp3Service(SITE, self.site.bsettings, self.cfg)
        self.task = asyncio.create_task(self.svc.run(self.stop))
        await asyncio.wait_for(self.svc.ready.wait(), 10)
        self.site.client.subscribe(T.dnp3_state, self._on_state, qos=1)
        # the outstation has seen the controller and both devices
        await self.site.wait(lambda: self.svc.image.online.get("inverter") is True, 5, "image")
        await self.site.wait(lambda: self.svc.image.state is not None, 5, "controller state")
        return self

    def _on_state(self, msg: Message) -> None:
        self.dnp3_state = jsonutil.loads(msg.payload)

    async def __aexit__(self, *exc: Any) -> None:
        self.stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 10)
        await self.site.__aexit__(*exc)

    @property
    def port(self) -> int:
        assert self.svc.port is not None
        return self.svc.port
