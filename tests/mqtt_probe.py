"""A synchronous MQTT observer for tests: subscribe, collect, wait with a timeout."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    properties: Any
    at: float

    def json(self) -> Any:
        return json.loads(self.payload)


class Probe:
    """Collects every message on the given filters; `wait_for` polls with a deadline."""

    def __init__(self, host: str, port: int, *filters: str, client_id: str | None = None) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client_id = client_id or f"probe-{uuid.uuid4().hex[:8]}"
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        c.on_socket_open = lambda _c, _u, s: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
        c.on_message = self._on_message
        filters_ = filters or ("#",)

        def on_connect(client: paho.Client, *_: Any) -> None:
            for f in filters_:
                client.subscribe(f, 1)
            self._connected.set()

        c.on_connect = on_connect
        c.reconnect_delay_set(0.1, 1)  # type: ignore[arg-type]
        c.connect(host, port, keepalive=5)
        c.loop_start()
        if not self._connected.wait(5):
            raise TimeoutError(f"probe could not connect to {host}:{port}")
        time.sleep(0.05)  # let SUBACKs land
        self.client = c

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(
                Received(
                    msg.topic,
                    bytes(msg.payload),
                    bool(msg.retain),
                    msg.qos,
                    getattr(msg, "properties", None),
                    time.monotonic(),
                )
            )

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def wait_for(
        self, topic: str, pred: Callable[[Received], bool] = lambda _m: True, timeout: float = 5.0
    ) -> Received:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.snapshot():
                if paho.topic_matches_sub(topic, m.topic) and pred(m):
                    return m
            time.sleep(0.01)
        seen = sorted({m.topic for m in self.snapshot()})[:40]
        raise TimeoutError(f"no message on {topic} matching within {timeout}s; topics seen: {seen}")

    def latest(self, topic: str) -> Received | None:
        for m in reversed(self.snapshot()):
            if m.topic == topic:
                return m
        return None

    def request(self, topic: str, body: Any, timeout: float = 5.0) -> dict[str, Any]:
        """MQTT 5 request/response: publish with ResponseTopic + CorrelationData, await reply."""
        corr = uuid.uuid4().hex
        reply_topic = f"{topic.split('/')[0]}/{topic.split('/')[1]}/reply/{self.client_id}/{corr}"
        self.client.subscribe(reply_topic, 1)
        time.sleep(0.02)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply_topic
        props.CorrelationData = corr.encode()
        payload = body if isinstance(body, (bytes, str)) else json.dumps(body)
        self.client.publish(topic, payload, qos=1, properties=props)
        m = self.wait_for(reply_topic, timeout=timeout)
        assert m.properties.CorrelationData == corr.encode(), "correlation data not echoed"
        out: dict[str, Any] = m.json()
        return out

    def publish(self, topic: str, payload: Any, qos: int = 1, retain: bool = False) -> None:
        data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        self.client.publish(topic, data, qos=qos, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
