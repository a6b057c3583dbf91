"""The Sparkplug B edge node against an independent host application (tests/sparkplug_host.py,
written from the specification), over the real broker, with the real simulator, adapters and
controller (tests/integration/controller_site.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest

from edge.mqtt import BrokerSettings
from edge.sparkplug.config import SparkplugSchema
from edge.sparkplug.service import SparkplugService
from tests.broker import Broker
from tests.integration.controller_site import SITE, ControllerSite
from tests.sparkplug_host import BOOLEAN, DOUBLE, INT64, STRING, UINT16, Host

pytestmark = [pytest.mark.broker, pytest.mark.slow]
GROUP = "plant"
NODE = SITE


def _run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))


@contextlib.asynccontextmanager
async def edge_node(broker: Broker, **cfg: Any) -> AsyncIterator[SparkplugService]:
    settings = BrokerSettings(broker.host, broker.port, keepalive=2)
    svc = SparkplugService(SITE, settings, SparkplugSchema().load({"group_id": GROUP, **cfg}))
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        yield svc
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def until(host: Host, pred: Any, timeout: float = 10.0, what: str = "") -> Any:
    return await asyncio.to_thread(host.wait, pred, timeout, what)


def births(host: Host, device: str | None) -> list[Any]:
    return host.find("DBIRTH" if device else "NBIRTH", NODE, device)


def test_births_aliases_and_data_by_exception(broker: Broker) -> None:
    host = Host(broker, GROUP)

    async def main() -> None:
        async with ControllerSite(broker, "sunspec_704") as site, edge_node(broker):
            await until(
                host,
                lambda: (
                    births(host, "battery")
                    and births(host, "inverter")
                    and births(host, "controller")
                ),
                10,
                "DBIRTHs",
            )
            nbirth = births(host, None)[0].payload
            node = {m.name: m for m in nbirth.metrics}
            assert node["bdSeq"].datatype == INT64 and node["bdSeq"].value == 0
            assert node["Node Control/Rebirth"].datatype == BOOLEAN
            assert node["Node Control/Rebirth"].value is False
            assert nbirth.seq == 0
            # Every adapter point is a metric, with its datatype, unit and alias.
            meta = (
                site.adapters[0].meta
                if site.adapters[0].name == "battery"
                else site.adapters[1].meta
            )
            dbirth = births(host, "battery")[0].payload
            by_name = {m.name: m for m in dbirth.metrics}
            assert set(meta["points"]) <= set(by_name)
            soc = by_name["802/SoC"]
            assert soc.datatype == DOUBLE and soc.alias is not None
            assert soc.properties["engUnit"] == meta["points"]["802/SoC"]["unit"]
            assert soc.properties["readOnly"] is True
            assert by_name["802/SetOp"].datatype == UINT16
            assert by_name["802/SetOp"].properties["readOnly"] is False
            assert soc.value == pytest.approx(site.value("battery", 802, "SoC"), abs=0.5)
            ctl = {m.name: m for m in births(host, "controller")[0].payload.metrics}
            assert ctl["state"].datatype == STRING and ctl["Commands/start"].datatype == BOOLEAN
            # Data changes arrive by alias only, and only when they change.
            assert (await site.cmd("start"))["ok"]
            await site.wait_state("holding", 10)
            assert (await site.cmd("discharge", {"power_w": 8000}))["ok"]
            await until(
                host,
                lambda: host.value(NODE, "inverter", "701/W") == pytest.approx(8000, abs=50),
                10,
                "inverter power in DDATA",
            )
            await until(host, lambda: host.value(NODE, "controller", "state") == "discharging", 5)
            ddata = host.find("DDATA", NODE)
            assert ddata
            last: dict[tuple[str | None, int], Any] = {}
            for r in ddata:
                for m in r.payload.metrics:
                    assert m.name is None and m.alias is not None, m
                    key = (r.device, m.alias)
                    assert last.get(key, object()) != m.value, (
                        f"unchanged value resent: {r.device} {m}"
                    )
                    last[key] = m.value
            # A rebirth on request: NBIRTH with the same bdSeq and seq 0, then every DBIRTH.
            n_before = len(births(host, None))
            host.rebirth(NODE)
            await until(
                host,
                lambda: (
                    len(births(host, None)) > n_before
                    and len(births(host, "battery")) > 1
                    and len(births(host, "controller")) > 1
                ),
                5,
                "rebirth",
            )
            again = births(host, None)[-1].payload
            assert again.seq == 0
            assert {m.name: m.value for m in again.metrics}["bdSeq"] == 0
            assert host.errors == []

    try:
        _run(main())
    finally:
        host.close()
    # The clean stop ended the session with an NDEATH carrying the same bdSeq.
    assert host.find("NDEATH", NODE)
    assert host.errors == []
