"""The controller's MQTT shell against a real Mosquitto: commands (request/response, one reply
each), the retained state topic, events, status with will, and device writes over set topics.

Devices are a small responder here (answers set requests with a read-back and republishes the
point like an adapter), so this test pins the shell independently of the Modbus adapters; the
end-to-end tests with the simulator and adapters are in test_controller_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from edge.config.site import parse_site
from edge.controller.shell import ControllerService
from edge.mqtt import BrokerSettings, MqttClient, RpcError, Topics, jsonutil, serve
from edge.mqtt.rpc import Request
from tests.broker import Broker
from tests.mqtt_probe import Probe

pytestmark = pytest.mark.broker

T = Topics("t1")
BATTERY = {
    "SoC": 50.0,
    "V": 800.0,
    "AChaMax": 100.0,
    "ADisChaMax": 100.0,
    "WChaRteMax": 60000.0,
    "WDisChaRteMax": 60000.0,
    "State": 1,
    "Evt1": 0,
}


class Responder:
    """Answers `{root}/+/set/#` like an adapter would, and publishes point values."""

    def __init__(self, broker: Broker) -> None:
        self.client = MqttClient(BrokerSettings(broker.host, broker.port, keepalive=2), "responder")
        self.writes: list[tuple[str, str, str, Any]] = []
        self.fail: set[str] = set()
        serve(self.client, f"{T.root}/+/set/#", self.handle)

    async def start(self) -> None:
        await self.client.start()
        for dev in ("battery", "inverter"):
            self.client.publish(T.status(dev), "online", qos=1, retain=True)
        for p, v in BATTERY.items():
            self.point("battery", "802", p, v)
        self.point("inverter", "702", "WMaxRtg", 50000.0)
        self.point("inverter", "701", "Alrm", 0)

    def point(self, dev: str, model: str, p: str, v: Any) -> None:
        self.client.publish(T.point(dev, model, p), jsonutil.dumps(v), qos=1, retain=True)

    async def handle(self, req: Request) -> dict[str, Any]:
        dev, model, p = T.parse_set(req.topic)
        value = req.body.get("value")
        self.writes.append((dev, model, p, value))
        if p in self.fail:
            raise RpcError("device_error", f"{model}/{p}: read back 1 after writing {value}")
        self.point(dev, model, p, value)
        if (model, p, value) == ("802", "SetOp", 1):
            self.point("battery", "802", "State", 3)
        return {"value": value}

    def seq(self) -> list[str]:
        return [f"{m}/{p}={v}" for _, m, p, v in self.writes]


def _site(broker: Broker, **ctl: Any) -> Any:
    return parse_site(
        {
            "site": {"id": "t1"},
            "broker": {"host": broker.host, "port": broker.port, "keepalive": 2},
            "controller": {"restart_settle_s": 0.2, "on_restart": "report", **ctl},
        }
    )


async def _wait(pred: Any, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


def test_commands_state_events_and_status(broker: Broker, probe_factory: Any) -> None:
    async def main() -> None:
        probe: Probe = probe_factory(f"{T.root}/controller/#")
        dev = Responder(broker)
        await dev.start()
        site = _site(broker)
        svc = ControllerService(site.site, site.broker, site.controller)
        stop = asyncio.Event()
        task = asyncio.create_task(svc.run(stop))
        try:
            await asyncio.to_thread(
                probe.wait_for, T.controller_status, lambda m: m.payload == b"online", 5
            )
            req = lambda cmd, body: asyncio.to_thread(probe.request, T.controller_cmd(cmd), body, 5)  # noqa: E731
            r = await req("start", {})
            assert r["ok"] is True and r["state"] in ("connecting", "holding"), r
            await _wait(lambda: svc.controller is not None and svc.controller.state == "holding")
            assert dev.seq()[:6] == [
                "802/AlmRst=1",
                "802/SetOp=1",
                "704/WSetMod=1",
                "704/WSetRvrtTms=30",
                "704/WSet=0",
                "704/WSetEna=1",
            ]
            r = await req("charge", {"power_w": 70000})
            assert r == {
                "ok": True,
                "state": "charging",
                "setpoint": {"requested_w": 70000, "applied_w": 50000},
            }
            assert dev.seq()[-1] == "704/WSet=-50000"
            # the retained state, exactly per topics.md
            m = await asyncio.to_thread(
                probe.wait_for,
                T.controller_state,
                lambda m: (
                    m.json()["state"] == "charging" and m.json()["setpoint"]["applied_w"] == 50000
                ),
                3,
            )
            assert m.retain is False  # live delivery; retained flag checked by a late subscriber
            state = m.json()
            assert set(state) == {
                "state",
                "setpoint",
                "limits",
                "soc",
                "faults",
                "reason",
                "mode",
                "why",
                "grid",  # grid support (issue 10)
                "ts",
            }
            assert state["mode"]["name"] == "manual" and state["mode"]["source"] == "command"
            assert state["why"].startswith("manual: charge ")
            assert state["limits"] == {
                "charge_w": 50000,
                "discharge_w": 50000,
                "source": "inverter rating",
            }
            late: Probe = probe_factory(T.controller_state)
            got = await asyncio.to_thread(late.wait_for, T.controller_state, lambda m: True, 3)
            assert got.retain is True and got.json()["state"] == "charging"
            # refusals: named field, events
            r = await req("discharge", {"power_w": "lots"})
            assert r["ok"] is False and r["error"]["code"] == "invalid_payload"
            assert "power_w" in r["error"]["message"] and r["state"] == "charging"
            r = await req("start", {})
            assert r["error"]["code"] == "not_allowed_in_state" and r["state"] == "charging"
            r = await req("jump", {})
            assert r["error"]["code"] == "unknown_command"
            r = await req("hold", b"{not json")
            assert r["error"]["code"] == "invalid_payload"
            ev = await asyncio.to_thread(
                probe.wait_for,
                T.controller_events,
                lambda m: m.json().get("kind") == "refused" and m.json()["command"] == "start",
                3,
            )
            assert ev.json()["error"]["code"] == "not_allowed_in_state"
            kinds = [m.json()["kind"] for m in probe.snapshot() if m.topic == T.controller_events]
            assert "transition" in kinds and "restart" in kinds
            # MQTT 3.1.1 style request: reply topic and correlation id in the body
            legacy: Probe = probe_factory(f"{T.root}/reply/legacy/#")
            legacy.publish(
                T.controller_cmd("get_state"),
                json.dumps({"response_topic": f"{T.root}/reply/legacy/1", "correlation_id": "c1"}),
            )
            m = await asyncio.to_thread(
                legacy.wait_for, f"{T.root}/reply/legacy/1", lambda m: True, 3
            )
            assert m.json()["correlation_id"] == "c1" and m.json()["state"] == "charging"
            # a failing device write: stop sequence, fault named on state and events
            dev.fail.add("WSet")
            r = await req("discharge", {"power_w": 1000})
            assert r["ok"] is False and r["error"]["code"] == "fault_active"
            m = await asyncio.to_thread(
                probe.wait_for, T.controller_state, lambda m: m.json()["state"] == "fault", 3
            )
            assert m.json()["faults"][0]["code"] == "write_failed"
            await asyncio.to_thread(
                probe.wait_for,
                T.controller_events,
                lambda m: m.json().get("kind") == "fault" and m.json()["code"] == "write_failed",
                3,
            )
            await _wait(lambda: dev.seq()[-1] == "802/SetOp=2")
            dev.fail.clear()
            r = await req("reset", {})
            assert r["ok"] is True and r["state"] == "stopped"
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await dev.client.stop()
        m = await asyncio.to_thread(
            probe.wait_for, T.controller_status, lambda m: m.payload == b"offline", 3
        )
        assert m.payload == b"offline"

    asyncio.run(asyncio.wait_for(main(), 60))


def test_every_request_gets_exactly_one_reply(broker: Broker, probe_factory: Any) -> None:
    """Concurrent commands (superseding each other) are all answered, once each."""

    async def main() -> None:
        dev = Responder(broker)
        await dev.start()
        site = _site(broker)
        svc = ControllerService(site.site, site.broker, site.controller)
        stop = asyncio.Event()
        task = asyncio.create_task(svc.run(stop))
        probe: Probe = probe_factory(f"{T.root}/reply/#")
        try:
            await _wait(lambda: svc.controller is not None, 5)
            await asyncio.sleep(0.3)
            await asyncio.to_thread(probe.request, T.controller_cmd("start"), {}, 5)
            await _wait(lambda: svc.controller is not None and svc.controller.state == "holding")
            client = MqttClient(BrokerSettings(broker.host, broker.port), "many")
            from edge.mqtt.rpc import Requester

            requester = Requester(client, T)
            await client.start()
            cmds = [
                ("charge", {"power_w": 1000 + i}) if i % 2 else ("discharge", {"power_w": i})
                for i in range(40)
            ]
            replies = await asyncio.gather(
                *(requester.request(T.controller_cmd(c), b, timeout=5) for c, b in cmds)
            )
            assert len(replies) == 40 and all(r["ok"] is True for r in replies)
            await asyncio.sleep(0.2)
            mine = [
                m.topic for m in probe.snapshot() if m.topic.startswith(f"{T.root}/reply/many/")
            ]
            assert len(mine) == 40 and len(set(mine)) == 40  # exactly one reply per request
            await client.stop()
            # the last command wins on the device
            await _wait(
                lambda: (
                    svc.controller is not None
                    and svc.controller._setpoint_work is not None
                    and svc.controller._setpoint_work.done
                )
            )
            assert svc.controller is not None
            assert svc.controller.applied_w == dev.writes[-1][3]  # charge_sign -1: same sign
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await dev.client.stop()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_b9_second_run_of_the_same_service_is_refused(broker: Broker) -> None:
    async def main() -> None:
        site = _site(broker)
        svc = ControllerService(site.site, site.broker, site.controller)
        stop = asyncio.Event()
        before = asyncio.all_tasks()
        task = asyncio.create_task(svc.run(stop))
        await _wait(lambda: svc.controller is not None, 5)
        with pytest.raises(RuntimeError, match="one loop"):
            await svc.run(stop)
        stop.set()
        await asyncio.wait_for(task, 10)
        # orderly: after run returns, no controller task is left behind
        await asyncio.sleep(0.05)
        leftovers = [t for t in asyncio.all_tasks() - before if not t.done()]
        assert leftovers == []

    asyncio.run(asyncio.wait_for(main(), 30))
