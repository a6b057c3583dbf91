"""The one paho-mqtt shell: MQTT 5, TCP_NODELAY, a will, reconnect and resubscribe.

paho runs its network loop on its own thread; every callback is handed to the asyncio loop
with `call_soon_threadsafe`, so the rest of the application never sees paho's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    """An incoming message, detached from paho's objects."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    response_topic: str | None = None
    correlation_data: bytes | None = None
    expiry_s: int | None = None


@dataclass(frozen=True)
class Will:
    topic: str
    payload: str | bytes = "offline"
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class TlsSettings:
    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None


@dataclass
class BrokerSettings:
    """Where and how to connect. `keepalive` sets how fast the broker fires our will (1.5x)."""

    host: str = "127.0.0.1"
    port: int = 1883
    keepalive: int = 5
    username: str | None = None
    password: str | None = None
    tls: TlsSettings | None = None
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 1.0


Handler = Callable[[Message], Awaitable[None] | None]


def _set_nodelay(sock: Any) -> None:
    """Nagle's algorithm costs ~40-80 ms per request/response on loopback (field notes)."""
    with contextlib.suppress(OSError, AttributeError):  # e.g. a unix socket
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass
class _Subscription:
    topic_filter: str
    qos: int
    handler: Handler


@dataclass
class MqttClient:
    """A connection to the broker, usable from asyncio code.

    - `subscribe()` registrations survive reconnects (they are re-sent on every CONNACK);
    - `on_connect` callbacks run after every (re)connect, to republish retained state;
    - `publish()` is thread-safe and never blocks; QoS>0 messages published while the broker is
      away are queued by paho and sent after the reconnect.
    """

    broker: BrokerSettings
    client_id: str
    will: Will | None = None
    session_expiry_s: int = 0
    # Called in paho's thread before every CONNECT attempt; its Will replaces `will`. For a
    # will that changes per connection (a Sparkplug NDEATH carries the connection's bdSeq).
    will_factory: Callable[[], Will] | None = None
    _subs: list[_Subscription] = field(default_factory=list)
    _on_connect: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)
    _on_disconnect: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _connected: asyncio.Event | None = None
    _paho: paho.Client | None = None
    connect_count: int = 0

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, timeout: float = 5.0) -> None:
        """Connect and start paho's network thread. Waits at most `timeout` for the CONNACK.

        Raises TimeoutError if the broker does not answer in time; paho keeps retrying in the
        background, so a caller may also catch it and carry on offline.
        """
        self._loop = asyncio.get_running_loop()
        self._connected = asyncio.Event()
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        b = self.broker
        if b.username is not None:
            c.username_pw_set(b.username, b.password)
        if b.tls is not None:
            c.tls_set(
                ca_certs=b.tls.ca_file,
                certfile=b.tls.cert_file,
                keyfile=b.tls.key_file,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        if self.will is not None:
            c.will_set(self.will.topic, self.will.payload, self.will.qos, self.will.retain)
        c.reconnect_delay_set(min_delay=b.reconnect_min_s, max_delay=b.reconnect_max_s)  # type: ignore[arg-type]
        c.on_socket_open = lambda _c, _u, sock: _set_nodelay(sock)
        if self.will_factory is not None:
            c.on_pre_connect = self._paho_on_pre_connect
        c.on_connect = self._paho_on_connect
        c.on_disconnect = self._paho_on_disconnect
        c.on_message = self._paho_on_message
        props = None
        if self.session_expiry_s > 0:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry_s
        c.connect_async(
            b.host,
            b.port,
            keepalive=b.keepalive,
            clean_start=self.session_expiry_s <= 0,
            properties=props,
        )
        self._paho = c
        c.loop_start()
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def stop(self) -> None:
        """Disconnect cleanly. A clean disconnect suppresses the will, so publish it first."""
        c = self._paho
        if c is None:
            return
        if self.will is not None and self.connected:
            info = c.publish(self.will.topic, self.will.payload, self.will.qos, self.will.retain)
            await asyncio.to_thread(info.wait_for_publish, 1.0)
        c.disconnect()
        await asyncio.to_thread(c.loop_stop)
        self._paho = None

    @property
    def connected(self) -> bool:
        return self._paho is not None and self._paho.is_connected()

    async def wait_connected(self, timeout: float) -> None:
        assert self._connected is not None, "start() first"
        await asyncio.wait_for(self._connected.wait(), timeout)

    # -- registration ----------------------------------------------------------------------
    def on_connect(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        """Run `callback` in the asyncio loop after every (re)connect."""
        self._on_connect.append(callback)

    def on_disconnect(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        self._on_disconnect.append(callback)

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        """Deliver matching messages to `handler` (sync or async) in the asyncio loop."""
        self._subs.append(_Subscription(topic_filter, qos, handler))
        if self.connected:
            assert self._paho is not None
            self._paho.subscribe(topic_filter, qos)

    # -- publishing ------------------------------------------------------------------------
    def publish(
        self,
        topic: str,
        payload: str | bytes,
        qos: int = 0,
        retain: bool = False,
        expiry_s: int | None = None,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
    ) -> paho.MQTTMessageInfo | None:
        c = self._paho
        if c is None:
            log.debug("publish to %s dropped: client not started", topic)
            return None
        props = None
        if response_topic is None and correlation_data is None:
            if expiry_s is not None:
                props = _expiry_properties(max(1, int(expiry_s)))
        else:
            props = Properties(PacketTypes.PUBLISH)
            if expiry_s is not None:
                props.MessageExpiryInterval = max(1, int(expiry_s))
            if response_topic is not None:
                props.ResponseTopic = response_topic
            if correlation_data is not None:
                props.CorrelationData = correlation_data
        return c.publish(topic, payload, qos=qos, retain=retain, properties=props)

    # -- paho callbacks (paho's thread) ----------------------------------------------------
    def _call_in_loop(self, fn: Callable[..., Awaitable[None] | None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def run() -> None:
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    task.add_done_callback(_log_task_error)
            except Exception:
                log.exception("MQTT callback %r failed", fn)

        with contextlib.suppress(RuntimeError):  # loop closed while paho was still delivering
            loop.call_soon_threadsafe(run)

    def _paho_on_pre_connect(self, client: paho.Client, _u: Any) -> None:
        assert self.will_factory is not None
        try:
            will = self.will_factory()
        except Exception:  # keep connecting with the previous will rather than not at all
            log.exception("will_factory failed")
            return
        self.will = will
        client.will_set(will.topic, will.payload, will.qos, will.retain)

    def _paho_on_connect(self, client: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.error("MQTT connect to %s:%s refused: %s", self.broker.host, self.broker.port, rc)
            return
        for sub in self._subs:
            client.subscribe(sub.topic_filter, sub.qos)
        self.connect_count += 1
        log.info("MQTT %s connected to %s:%s", self.client_id, self.broker.host, self.broker.port)
        assert self._loop is not None and self._connected is not None
        self._loop.call_soon_threadsafe(self._connected.set)
        for cb in self._on_connect:
            self._call_in_loop(cb)

    def _paho_on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        log.warning("MQTT %s disconnected: %s", self.client_id, rc)
        if self._loop is not None and self._connected is not None:
            self._loop.call_soon_threadsafe(self._connected.clear)
        for cb in self._on_disconnect:
            self._call_in_loop(cb)

    def _paho_on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        message = Message(
            topic=msg.topic,
            payload=bytes(msg.payload),
            qos=msg.qos,
            retain=bool(msg.retain),
            response_topic=getattr(props, "ResponseTopic", None),
            correlation_data=getattr(props, "CorrelationData", None),
            expiry_s=getattr(props, "MessageExpiryInterval", None),
        )
        for sub in self._subs:
            if paho.topic_matches_sub(sub.topic_filter, msg.topic):
                self._call_in_loop(sub.handler, message)


class _SharedProperties(Properties):
    """Properties that never change once shared: packed once, not on every publish (paho's
    pack walks every property name, a third of a telemetry publish's cost)."""

    @functools.cached_property
    def _packed(self) -> bytes:
        packed: bytes = super().pack()
        return packed

    def pack(self) -> bytes:
        return self._packed


@functools.lru_cache(maxsize=64)
def _expiry_properties(expiry_s: int) -> Properties:
    """Telemetry publishes differ only in expiry: building a Properties object for each costs
    about a quarter of a publish (measured by tests/perf/bench_adapter.py), so share them.
    paho only reads them when packing."""
    props = _SharedProperties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = expiry_s
    return props


def _log_task_error(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("MQTT handler failed", exc_info=task.exception())
