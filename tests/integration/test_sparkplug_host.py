"""The Sparkplug B edge node against an independent host application (tests/sparkplug_host.py,
written from the specification), over the real broker, with the real simulator, adapters and
controller (tests/integration/controller_site.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
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


def _result(host: Host, device: str, name: str) -> dict[str, Any] | None:
    raw = host.value(NODE, device, name)
    return json.loads(raw) if raw else None


def test_dcmd_writes_go_through_the_set_and_command_paths(broker: Broker) -> None:
    host = Host(broker, GROUP)

    async def main() -> None:
        async with ControllerSite(broker, "sunspec_704") as site, edge_node(broker):
            await until(host, lambda: births(host, "battery") and births(host, "controller"), 10)
            soc_alias = next(
                m.alias for m in births(host, "battery")[0].payload.metrics if m.name == "802/SoC"
            )
            # A good write, by name: the adapter writes, reads back, and the tree shows it.
            host.dcmd(NODE, "battery", [("802/CtrlHb", DOUBLE, 7.0)])
            await until(
                host,
                lambda: (
                    (_result(host, "battery", "Writes/last_result") or {}).get("metric")
                    == "802/CtrlHb"
                ),
                5,
                "write result",
            )
            r = _result(host, "battery", "Writes/last_result")
            assert r is not None and r["ok"] is True and r["value"] == 7, r
            await until(host, lambda: host.value(NODE, "battery", "802/CtrlHb") == 7, 5)
            assert site.value("battery", 802, "CtrlHb") == 7
            # Refused by the adapter's own validation: nothing written, the metric is resent.
            before = site.value("battery", 802, "SetOp")
            n = len(host.find("DDATA", NODE, "battery"))
            host.dcmd(NODE, "battery", [("802/SetOp", UINT16, 7)])
            await until(
                host,
                lambda: (
                    (_result(host, "battery", "Writes/last_result") or {}).get("metric")
                    == "802/SetOp"
                ),
                5,
                "refusal",
            )
            r = _result(host, "battery", "Writes/last_result")
            assert r is not None and r["ok"] is False and r["error"]["code"] == "out_of_range", r
            assert site.value("battery", 802, "SetOp") == before
            resent = [m for x in host.find("DDATA", NODE, "battery")[n:] for m in x.payload.metrics]
            setop_alias = next(
                m.alias for m in births(host, "battery")[0].payload.metrics if m.name == "802/SetOp"
            )
            assert any(m.alias == setop_alias and m.value == before for m in resent), resent
            # A read-only point, addressed by alias, is refused before anything is sent.
            host.dcmd(NODE, "battery", [(soc_alias, DOUBLE, 50.0)])
            await until(
                host,
                lambda: (
                    (_result(host, "battery", "Writes/last_result") or {}).get("metric")
                    == "802/SoC"
                ),
                5,
            )
            r = _result(host, "battery", "Writes/last_result")
            assert r is not None and r["error"]["code"] == "not_writable", r
            # Controller commands as metrics: refused in `stopped`, then start, then charge.
            host.dcmd(NODE, "controller", [("Commands/charge_w", DOUBLE, 5000.0)])
            await until(
                host,
                lambda: (
                    (_result(host, "controller", "Commands/last_result") or {}).get("metric")
                    == "Commands/charge_w"
                ),
                5,
            )
            r = _result(host, "controller", "Commands/last_result")
            assert r is not None and r["error"]["code"] == "not_allowed_in_state", r
            assert site.ctl.state == "stopped"
            host.dcmd(NODE, "controller", [("Commands/start", BOOLEAN, True)])
            await site.wait_state("holding", 10)
            await until(host, lambda: host.value(NODE, "controller", "state") == "holding", 5)
            assert host.value(NODE, "controller", "Commands/start") is False
            host.dcmd(NODE, "controller", [("Commands/charge_w", DOUBLE, 5000.0)])
            await site.wait_state("charging", 5)
            await until(host, lambda: host.value(NODE, "controller", "Commands/charge_w") == 5000.0)
            r = _result(host, "controller", "Commands/last_result")
            assert r is not None and r["ok"] is True and r["state"] == "charging", r
            # A DCMD that is not a Sparkplug payload changes nothing and kills nothing.
            host.client.publish(f"spBv1.0/{GROUP}/DCMD/{NODE}/controller", b"\xff\xff", 0)
            host.dcmd(NODE, "controller", [("Commands/stop", BOOLEAN, True)])
            await site.wait_state("stopped", 15)
            assert host.errors == []

    try:
        _run(main())
    finally:
        host.close()


def test_device_offline_is_a_ddeath_and_coming_back_a_dbirth(broker: Broker) -> None:
    host = Host(broker, GROUP)

    async def main() -> None:
        async with ControllerSite(broker, "sunspec_704") as site, edge_node(broker):
            await until(host, lambda: births(host, "battery"), 10)
            site.sim.inject("battery", "freeze", {"on": True})
            await until(host, lambda: host.find("DDEATH", NODE, "battery"), 10, "DDEATH")
            assert not host.find("DDEATH", NODE, "inverter")
            site.sim.inject("battery", "clear", {})
            await until(host, lambda: len(births(host, "battery")) == 2, 15, "DBIRTH again")
            assert host.find("NDEATH", NODE) == []
            assert host.errors == []

    try:
        _run(main())
    finally:
        host.close()


def test_primary_host_state_gates_births(broker: Broker) -> None:
    host = Host(broker, GROUP, host_id="scada")

    async def main() -> None:
        async with edge_node(broker, primary_host_id="scada"):
            await asyncio.sleep(1.0)
            assert births(host, None) == [], "born before the primary host was online"
            t0 = int(time.time() * 1000)
            await asyncio.to_thread(host.publish_state, True, t0)
            await until(host, lambda: births(host, None), 5, "NBIRTH after STATE online")
            bd = host.bd_seq[NODE]
            await asyncio.to_thread(host.publish_state, False, t0 + 1)
            await until(host, lambda: host.find("NDEATH", NODE), 5, "NDEATH after STATE offline")
            # An older STATE (a stale retained copy) is ignored.
            await asyncio.to_thread(host.publish_state, True, t0 - 1000)
            await asyncio.sleep(0.5)
            assert len(births(host, None)) == 1
            await asyncio.to_thread(host.publish_state, True, t0 + 2)
            await until(host, lambda: len(births(host, None)) == 2, 5, "rebirth on STATE online")
            assert host.bd_seq[NODE] == bd + 1  # it disconnected: a new connection, a new bdSeq
            assert len(host.find("NDEATH", NODE)) == 1
            # A host that restarts (a newer online without an offline) gets new births too.
            await asyncio.to_thread(host.publish_state, True, t0 + 3)
            await until(host, lambda: len(births(host, None)) == 3, 5)
            assert host.errors == []

    try:
        _run(main())
    finally:
        host.close()


def test_a_killed_edge_node_dies_by_its_will_and_reconnects_with_the_next_bdseq(
    broker: Broker, tmp_path: Path
) -> None:
    site_file = tmp_path / "site.toml"
    site_file.write_text(
        f'[site]\nid = "{SITE}"\n[broker]\nhost = "{broker.host}"\nport = {broker.port}\n'
        f'keepalive = 1\n[sparkplug]\ngroup_id = "{GROUP}"\n'
    )
    host = Host(broker, GROUP)

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "sparkplug", "-c", str(site_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    proc = start()
    try:
        host.wait(lambda: births(host, None), 15, "NBIRTH from the process")
        assert host.bd_seq[NODE] == 0
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        t_kill = time.monotonic()
        death = host.wait(lambda: host.find("NDEATH", NODE), 5, "NDEATH by the will")[0]
        assert death.at - t_kill < 3.0  # 1.5 x keepalive
        assert [m.value for m in death.payload.metrics if m.name == "bdSeq"] == [0]
        # The broker fires the will; so the next broker outage is survived with bdSeq + 1.
        proc = start()
        host.wait(lambda: len(births(host, None)) == 2, 15, "second NBIRTH")
        broker.restart(down_s=0.5)
        # The host may come back after the edge node's new NBIRTH: like any host, it asks.
        assert host.subscribed.wait(15)
        deadline = time.monotonic() + 20
        while len(births(host, None)) < 3 and time.monotonic() < deadline:
            host.rebirth(NODE)
            time.sleep(0.5)
        msgs = [
            (r.kind, [m.value for m in r.payload.metrics if m.name == "bdSeq"])
            for r in host.messages
        ]
        assert len(births(host, None)) >= 3, msgs
        bds = [
            next(m.value for m in r.payload.metrics if m.name == "bdSeq")
            for r in births(host, None)
        ]
        assert bds[2:] == [bds[1] + 1] * len(bds[2:]), bds
        assert host.errors == []
    finally:
        proc.kill()
        proc.wait(5)
        host.close()
