"""The Sparkplug and Home Assistant roles of mosquitto/acl (topics.md, "Access roles") against
the secure broker that mosquitto/make-secure.sh generates (fixtures of test_secure_broker)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from edge.mqtt import BrokerSettings, MqttClient, serve
from edge.mqtt.client import TlsSettings
from edge.mqtt.rpc import Request
from edge.mqtt.topics import SparkplugTopics, ha_discovery, ha_status
from edge.sparkplug.config import SparkplugSchema
from edge.sparkplug.service import SparkplugService
from tests.integration.test_secure_broker import (  # the fixture is used by name
    ACCEPTED,
    NOT_AUTHORIZED,
    Client,
    SecureBroker,
    T,
    marker,
    secure_broker,  # noqa: F401
)
from tests.sparkplug_host import BOOLEAN, decode_payload, encode_cmd

SP = SparkplugTopics("bess", "demo")
OTHER = SparkplugTopics("bess", "elsewhere")


def test_sparkplug_edge_node_role(secure_broker: SecureBroker) -> None:  # noqa: F811 (the fixture)
    b = secure_broker
    node = Client(b, "sparkplug", None, SP.node_topic("NCMD"), SP.dcmd_filter)
    host = Client(b, "sparkplug-host", None, "spBv1.0/bess/#")
    try:
        for kind in ("NBIRTH", "NDEATH", "NDATA"):
            assert node.publish(SP.node_topic(kind), b"\x08\x01") in ACCEPTED
        for kind in ("DBIRTH", "DDATA", "DDEATH"):
            assert node.publish(SP.device_topic(kind, "battery"), b"\x08\x01") in ACCEPTED
        assert node.publish(T.set("battery", 802, "SetOp"), '{"value": 1}') in ACCEPTED
        assert node.publish(T.controller_cmd("start"), "{}") in ACCEPTED
        # Not another edge node's namespace, not the tree's points or the controller's state.
        assert node.publish(OTHER.node_topic("NBIRTH"), b"x") == NOT_AUTHORIZED
        assert node.publish(SP.node_topic("NCMD"), b"x") == NOT_AUTHORIZED
        assert node.publish(T.point("battery", 802, "SoC"), "1") == NOT_AUTHORIZED
        assert node.publish(T.controller_state, "{}") == NOT_AUTHORIZED
        # The host commands it; it reads the commands.
        assert host.publish(SP.node_topic("NCMD"), b"rebirth") in ACCEPTED
        assert host.publish(SP.device_topic("DCMD", "battery"), b"dcmd") in ACCEPTED
        node.wait_for(SP.node_topic("NCMD"), b"rebirth")
        node.wait_for(SP.device_topic("DCMD", "battery"), b"dcmd")
        host.wait_for(SP.node_topic("NBIRTH"))
    finally:
        node.close()
        host.close()


def test_sparkplug_host_role_is_confined_to_sparkplug(secure_broker: SecureBroker) -> None:  # noqa: F811 (the fixture)
    b = secure_broker
    host = Client(b, "sparkplug-host", None, T.all)
    ctl = Client(b, "controller", None, T.controller_cmd_filter)
    try:
        assert host.publish("spBv1.0/STATE/scada", '{"online": true, "timestamp": 1}') in ACCEPTED
        assert host.publish(SP.node_topic("NBIRTH"), b"fake") == NOT_AUTHORIZED
        assert host.publish(T.controller_cmd("stop"), "{}") == NOT_AUTHORIZED
        assert ctl.publish(T.controller_state, '{"state": "x"}') in ACCEPTED
        marker(b, ctl, topic=T.controller_cmd("marker"))
        assert T.controller_cmd("stop") not in ctl.topics()
        assert host.topics() == []  # the tree is not its to read
    finally:
        host.close()
        ctl.close()


def test_home_assistant_roles(secure_broker: SecureBroker) -> None:  # noqa: F811 (the fixture)
    b = secure_broker
    disc = Client(b, "ha-discovery", None, ha_status())
    ha = Client(b, "homeassistant", None, "homeassistant/#", T.all)
    ctl = Client(b, "controller", None, T.controller_cmd_filter)
    try:
        mine = ha_discovery("sensor", "bess_demo", "soc")
        assert disc.publish(mine, "{}", retain=True) in ACCEPTED
        assert disc.publish(ha_discovery("sensor", "bess_other", "soc"), "{}") == NOT_AUTHORIZED
        assert disc.publish(ha_status(), "online") == NOT_AUTHORIZED
        assert disc.publish(T.controller_cmd("start"), "{}") == NOT_AUTHORIZED
        ha.wait_for(mine)
        # Home Assistant announces itself and commands the controller; nothing else.
        assert ha.publish(ha_status(), "online") in ACCEPTED
        disc.wait_for(ha_status(), b"online")
        reply = f"{T.reply_base('homeassistant')}/cmd"
        body = json.dumps({"response_topic": reply, "correlation_id": "ha-start"})
        assert ha.publish(T.controller_cmd("start"), body) in ACCEPTED
        ctl.wait_for(T.controller_cmd("start"))
        assert ha.publish(T.set("battery", 802, "SetOp"), '{"value": 1}') == NOT_AUTHORIZED
        assert ha.publish(T.controller_state, "{}") == NOT_AUTHORIZED
        # The controller's reply reaches it; another requester's reply does not.
        assert ctl.publish(reply, '{"ok": true}') in ACCEPTED
        assert ctl.publish(f"{T.reply_base('op-7')}/1", '{"ok": true}') in ACCEPTED
        ha.wait_for(reply)
        marker(b, ha)
        assert f"{T.reply_base('op-7')}/1" not in ha.topics()
    finally:
        for c in (disc, ha, ctl):
            c.close()
        cleanup = Client(b, "ha-discovery")
        cleanup.publish(ha_discovery("sensor", "bess_demo", "soc"), "", retain=True)
        cleanup.close()


def test_the_edge_node_runs_with_its_role_and_commands_through_it(
    secure_broker: SecureBroker,  # noqa: F811 (the fixture)
) -> None:
    """The real edge node over TLS with the `sparkplug` password: its will is accepted, the
    host's DCMD becomes a controller command, and the reply comes back on its own branch."""
    b = secure_broker
    tls = TlsSettings(ca_file=b.ca)

    def settings(user: str) -> BrokerSettings:
        return BrokerSettings("127.0.0.1", b.port, 2, user, b.passwords[user], tls)

    async def main() -> None:
        ctl = MqttClient(settings("controller"), "controller-1")
        seen: list[str] = []

        async def handle(req: Request) -> dict[str, Any]:
            seen.append(req.topic)
            return {"state": "holding"}

        serve(ctl, T.controller_cmd_filter, handle)
        await ctl.start()
        ctl.publish(T.controller_status, "online", qos=1, retain=True)
        svc = SparkplugService("demo", settings("sparkplug"), SparkplugSchema().load({}))
        host = Client(b, "sparkplug-host", None, "spBv1.0/bess/#")
        stop = asyncio.Event()
        task = asyncio.create_task(svc.run(stop))
        try:
            await asyncio.to_thread(
                host.wait_for, SP.device_topic("DBIRTH", "controller"), None, 10
            )
            cmd = encode_cmd([("Commands/start", BOOLEAN, True)])
            assert host.publish(SP.device_topic("DCMD", "controller"), cmd) in ACCEPTED
            for _ in range(500):
                results = [
                    m.value
                    for msg in host.messages
                    if msg.topic == SP.device_topic("DDATA", "controller")
                    for m in decode_payload(msg.payload).metrics
                    if isinstance(m.value, str) and "Commands/start" in m.value
                ]
                if results:
                    break
                await asyncio.sleep(0.01)
            assert results and json.loads(results[-1])["ok"] is True, results
            assert seen == [T.controller_cmd("start")]
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            host.close()
            ctl.publish(T.controller_status, "", qos=1, retain=True)
            await ctl.stop()

    asyncio.run(asyncio.wait_for(main(), 60))
