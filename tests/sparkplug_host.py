"""An independent Sparkplug B host application for tests.

Written from the Sparkplug B 3.0 specification and the protobuf wire format alone: it shares no
code with edge/sparkplug (not its generated protobuf classes, not its MQTT shell). It decodes
every message of a group, resolves aliases from the births, checks the `seq` and `bdSeq` rules
as it goes (violations are collected in `errors`), publishes its STATE, NCMD and DCMD.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

# Datatype numbers of the specification.
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING = 9, 10, 11, 12
_SIGNED32 = {INT8: 8, INT16: 16, INT32: 32}


# -- the protobuf wire format --------------------------------------------------------------------
def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def wire_fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value): varints as int, fixed as bytes, len-delimited as bytes."""
    out = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 1:
            v, i = buf[i : i + 8], i + 8
        elif wt == 2:
            n, i = _varint(buf, i)
            v, i = buf[i : i + n], i + n
        elif wt == 5:
            v, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt} at {i}")
        out.append((num, wt, v))
    return out


def _enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, wt: int, data: bytes) -> bytes:
    return _enc_varint(num << 3 | wt) + data


def _len(num: int, data: bytes) -> bytes:
    return _field(num, 2, _enc_varint(len(data)) + data)


# -- Sparkplug payloads --------------------------------------------------------------------------
@dataclass
class Metric:
    name: str | None = None
    alias: int | None = None
    datatype: int | None = None
    value: Any = None
    is_null: bool = False
    timestamp: int | None = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class Payload:
    timestamp: int | None = None
    seq: int | None = None
    metrics: list[Metric] = field(default_factory=list)


def _value(field_no: int, raw: Any, datatype: int | None) -> Any:
    if field_no in (3, 10):  # int_value (uint32)
        bits = _SIGNED32.get(datatype or 0)
        if bits:
            raw &= (1 << bits) - 1
            return raw - (1 << bits) if raw >> (bits - 1) else raw
        return raw
    if field_no in (4, 11):  # long_value (uint64)
        return raw - (1 << 64) if datatype == INT64 and raw >> 63 else raw
    if field_no in (5, 12):
        return struct.unpack("<f", raw)[0]
    if field_no in (6, 13):
        return struct.unpack("<d", raw)[0]
    if field_no in (7, 14):
        return bool(raw)
    if field_no in (8, 15):
        return raw.decode()
    return raw


def _properties(buf: bytes) -> dict[str, Any]:
    keys, values = [], []
    for num, _wt, v in wire_fields(buf):
        if num == 1:
            keys.append(v.decode())
        elif num == 2:
            pv = {n: (w, x) for n, w, x in wire_fields(v)}
            dtype = pv.get(1, (0, None))[1]
            val = None
            for n in (3, 4, 5, 6, 7, 8):
                if n in pv:
                    val = _value(n, pv[n][1], dtype)
            values.append(val)
    return dict(zip(keys, values, strict=True))


def decode_payload(buf: bytes) -> Payload:
    p = Payload()
    for num, _wt, v in wire_fields(buf):
        if num == 1:
            p.timestamp = v
        elif num == 3:
            p.seq = v
        elif num == 2:
            m = Metric()
            fields_ = wire_fields(v)
            for n, _w, x in fields_:
                if n == 4:
                    m.datatype = x
            for n, _w, x in fields_:
                if n == 1:
                    m.name = x.decode()
                elif n == 2:
                    m.alias = x
                elif n == 3:
                    m.timestamp = x
                elif n == 7:
                    m.is_null = bool(x)
                elif n == 9:
                    m.properties = _properties(x)
                elif 10 <= n <= 15:
                    m.value = _value(n, x, m.datatype)
            p.metrics.append(m)
    return p


def encode_cmd(metrics: list[tuple[str | int, int, Any]]) -> bytes:
    """An NCMD/DCMD payload: (name or alias, datatype, value) per metric."""
    body = _field(1, 0, _enc_varint(int(time.time() * 1000)))
    for key, dtype, value in metrics:
        m = _len(1, key.encode()) if isinstance(key, str) else _field(2, 0, _enc_varint(key))
        m += _field(4, 0, _enc_varint(dtype))
        if value is None:
            m += _field(7, 0, b"\x01")
        elif dtype == BOOLEAN:
            m += _field(14, 0, b"\x01" if value else b"\x00")
        elif dtype == DOUBLE:
            m += _field(13, 1, struct.pack("<d", value))
        elif dtype == STRING:
            m += _len(15, value.encode())
        elif dtype in (INT64, UINT64):
            m += _field(11, 0, _enc_varint(value & (2**64 - 1)))
        else:
            m += _field(10, 0, _enc_varint(value & (2**32 - 1)))
        body += _len(2, m)
    return body


# -- the host application ------------------------------------------------------------------------
@dataclass
class Received:
    kind: str
    node: str
    device: str | None
    payload: Payload
    at: float  # monotonic
    at_wall: float


class Host:
    """`Host(broker, "bess", host_id="scada")`: subscribes to the whole group."""

    def __init__(self, broker: Any, group: str, host_id: str = "scada") -> None:
        self.group, self.host_id = group, host_id
        self.lock = threading.RLock()
        self.messages: list[Received] = []
        self.errors: list[str] = []
        self.aliases: dict[str, dict[int, tuple[str | None, str, int]]] = {}  # node -> alias
        self.values: dict[tuple[str, str | None, str], Any] = {}
        self.bd_seq: dict[str, int] = {}
        self._seq: dict[str, int] = {}
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"host-{host_id}-{time.monotonic_ns()}",
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        self.client.will_set(self.state_topic, self._state(False), 1, retain=True)
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.on_connect = self._on_connect
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect(broker.host, broker.port, keepalive=5)
        self.client.loop_start()
        if not self.subscribed.wait(5):
            raise TimeoutError("host: no SUBACK")

    def _on_connect(self, client: paho.Client, *_a: Any) -> None:
        self.subscribed.clear()
        client.subscribe(f"spBv1.0/{self.group}/#", 1)

    @property
    def state_topic(self) -> str:
        return f"spBv1.0/STATE/{self.host_id}"

    @staticmethod
    def _state(online: bool, ts: int | None = None) -> str:
        return json.dumps({"online": online, "timestamp": ts or int(time.time() * 1000)})

    def publish_state(self, online: bool, ts: int | None = None) -> None:
        self.client.publish(
            self.state_topic, self._state(online, ts), 1, retain=True
        ).wait_for_publish(5)

    def rebirth(self, node: str) -> None:
        topic = f"spBv1.0/{self.group}/NCMD/{node}"
        self.client.publish(topic, encode_cmd([("Node Control/Rebirth", BOOLEAN, True)]), 0)

    def dcmd(self, node: str, device: str, metrics: list[tuple[str | int, int, Any]]) -> None:
        topic = f"spBv1.0/{self.group}/DCMD/{node}/{device}"
        self.client.publish(topic, encode_cmd(metrics), 0)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # -- receiving ------------------------------------------------------------------------------
    def _check_seq(self, node: str, kind: str, seq: int | None) -> None:
        if kind == "NBIRTH":
            if seq != 0:
                self.errors.append(f"{node} NBIRTH seq {seq}, expected 0")
            self._seq[node] = 0
            return
        if node not in self._seq:
            self.errors.append(f"{node} {kind} before NBIRTH")
            return
        expected = (self._seq[node] + 1) % 256
        if seq != expected:
            self.errors.append(f"{node} {kind} seq {seq}, expected {expected}")
        self._seq[node] = seq if seq is not None else expected

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if len(parts) < 4 or parts[0] != "spBv1.0" or parts[1] != self.group:
            return
        kind, node = parts[2], parts[3]
        device = parts[4] if len(parts) > 4 else None
        if kind in ("NCMD", "DCMD"):
            return
        try:
            p = decode_payload(msg.payload)
        except Exception as exc:
            with self.lock:
                self.errors.append(f"{msg.topic}: undecodable: {exc}")
            return
        with self.lock:
            self._apply(kind, node, device, p)
            self.messages.append(Received(kind, node, device, p, time.monotonic(), time.time()))

    def _apply(self, kind: str, node: str, device: str | None, p: Payload) -> None:
        if kind == "NDEATH":
            bd = next((m.value for m in p.metrics if m.name == "bdSeq"), None)
            if bd != self.bd_seq.get(node):
                self.errors.append(f"{node} NDEATH bdSeq {bd} != NBIRTH's {self.bd_seq.get(node)}")
            self._seq.pop(node, None)
            return
        self._check_seq(node, kind, p.seq)
        table = self.aliases.setdefault(node, {})
        if kind == "NBIRTH":
            table.clear()
            self.bd_seq[node] = next((m.value for m in p.metrics if m.name == "bdSeq"), -1)
        for m in p.metrics:
            if kind in ("NBIRTH", "DBIRTH"):
                if m.name is None or not m.datatype:
                    self.errors.append(f"{kind} metric without name or datatype: {m}")
                    continue
                if m.alias is not None:
                    owner = table.get(m.alias)
                    if owner is not None and owner[:2] != (device, m.name):
                        self.errors.append(f"alias {m.alias} of {m.name} already used by {owner}")
                    table[m.alias] = (device, m.name, m.datatype)
                self.values[(node, device, m.name)] = None if m.is_null else m.value
            elif kind in ("NDATA", "DDATA"):
                entry = table.get(m.alias) if m.alias is not None else None
                if entry is None or entry[0] != device:
                    self.errors.append(f"{kind} of {device}: unknown alias {m.alias}")
                    continue
                self.values[(node, device, entry[1])] = None if m.is_null else m.value

    # -- waiting --------------------------------------------------------------------------------
    def find(self, kind: str, node: str | None = None, device: str | None = None) -> list[Received]:
        with self.lock:
            return [
                r
                for r in self.messages
                if r.kind == kind
                and node in (None, r.node)
                and (device is None or r.device == device)
            ]

    def wait(self, pred: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = pred()
            if got:
                return got
            time.sleep(0.01)
        kinds = [(r.kind, r.device) for r in self.messages][-30:]
        raise TimeoutError(f"host: timed out waiting for {what or pred}; last: {kinds}")

    def value(self, node: str, device: str | None, name: str) -> Any:
        return self.values.get((node, device, name))
