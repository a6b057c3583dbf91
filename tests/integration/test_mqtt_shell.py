"""The MQTT shell against a real broker: request/response (MQTT 5 and 3.1.1 styles),
will on abrupt loss, resubscribe and on_connect republish after a broker restart."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

from edge.mqtt import BrokerSettings, MqttClient, Requester, RpcError, Topics, Will, serve
from edge.mqtt.rpc import Request
from tests.broker import Broker
from tests.mqtt_probe import Probe

T = Topics("t1")


def _settings(broker: Broker) -> BrokerSettings:
    return BrokerSettings(host=broker.host, port=broker.port, keepalive=2)


async def _echo_service(client: MqttClient) -> None:
    async def handle(req: Request) -> dict[str, Any]:
        if "value" not in req.body:
            raise RpcError("invalid_payload", "value: missing")
        return {"value": req.body["value"]}

    serve(client, T.set_filter("dev"), handle)


def test_request_response_mqtt5_and_errors(broker: Broker) -> None:
    async def main() -> None:
        server = MqttClient(_settings(broker), "server")
        await _echo_service(server)
        await server.start()
        requester_client = MqttClient(_settings(broker), "req")
        req = Requester(requester_client, T)
        await requester_client.start()
        await asyncio.sleep(0.1)
        ok = await req.request(T.set("dev", 802, "SetOp"), {"value": 1}, timeout=2)
        assert ok == {"ok": True, "value": 1}
        bad = await req.request(T.set("dev", 802, "SetOp"), {}, timeout=2)
        assert bad["ok"] is False and bad["error"]["code"] == "invalid_payload"
        assert "value" in bad["error"]["message"]
        await server.stop()
        await requester_client.stop()

    asyncio.run(main())


def test_non_json_and_nan_are_refused_with_a_reply(broker: Broker, probe_factory: Any) -> None:
    async def main() -> None:
        server = MqttClient(_settings(broker), "server")
        await _echo_service(server)
        await server.start()
        probe: Probe = probe_factory("nothing")
        for payload in (b"not json", b'{"value": NaN}', b"[1,2]", b"x" * 70000):
            reply = await asyncio.to_thread(probe.request, T.set("dev", 1, "Md"), payload, 3)
            assert reply["ok"] is False
            assert reply["error"]["code"] == "invalid_payload"
        await server.stop()

    asyncio.run(main())


def test_mqtt311_style_reply_topic_in_body(broker: Broker, probe_factory: Any) -> None:
    async def main() -> None:
        server = MqttClient(_settings(broker), "server")
        await _echo_service(server)
        await server.start()
        probe: Probe = probe_factory("bess/t1/reply/legacy/#")
        body = {"value": 7, "response_topic": "bess/t1/reply/legacy/1", "correlation_id": "abc"}
        probe.publish(T.set("dev", 1, "x"), json.dumps(body))
        m = await asyncio.to_thread(probe.wait_for, "bess/t1/reply/legacy/1", lambda _m: True, 3)
        assert m.json() == {"ok": True, "value": 7, "correlation_id": "abc"}
        await server.stop()

    asyncio.run(main())


def test_will_fires_and_state_is_republished_after_restart(
    broker: Broker, probe_factory: Any
) -> None:
    async def main() -> None:
        client = MqttClient(_settings(broker), "dev-adapter", will=Will(T.status("dev")))
        connects: list[int] = []

        def republish() -> None:
            connects.append(1)
            client.publish(T.status("dev"), "online", qos=1, retain=True)

        client.on_connect(republish)
        got: list[bytes] = []
        client.subscribe(T.set_filter("dev"), lambda m: got.append(m.payload))
        await client.start()
        probe: Probe = probe_factory(T.status("dev"))
        await asyncio.to_thread(
            probe.wait_for, T.status("dev"), lambda m: m.payload == b"online", 3
        )

        broker.restart(signal.SIGKILL)
        await client.wait_connected(timeout=3)
        await asyncio.sleep(0.2)
        assert len(connects) == 2
        probe2: Probe = probe_factory(T.status("dev"))
        m = await asyncio.to_thread(
            probe2.wait_for, T.status("dev"), lambda m: m.payload == b"online", 3
        )
        assert m.retain
        # resubscribed: a set request after the restart still arrives
        probe2.publish(T.set("dev", 1, "x"), "{}")
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.02)
        assert got == [b"{}"]

        # An abrupt loss of the client (no DISCONNECT) makes the broker publish the will.
        assert client._paho is not None
        client._paho.socket().close()  # type: ignore[union-attr]
        client._paho.loop_stop()
        await asyncio.to_thread(
            probe2.wait_for, T.status("dev"), lambda m: m.payload == b"offline", 6
        )

    asyncio.run(main())
