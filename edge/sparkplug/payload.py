"""Sparkplug B payloads with protobuf, from the specification's `sparkplug_b.proto`.

Only this module touches the generated code. Metrics are `(MetricDef, value)` pairs; a value of
None is sent as `is_null`. Births carry names, datatypes, properties and aliases; data messages
carry aliases only (topics.md, "Sparkplug B").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from edge.sparkplug import sparkplug_b_pb2 as pb


class DataType(IntEnum):
    """The Sparkplug B datatypes this edge node uses (numbers from the specification)."""

    Int16 = 2
    Int32 = 3
    Int64 = 4
    UInt16 = 6
    UInt32 = 7
    UInt64 = 8
    Double = 10
    Boolean = 11
    String = 12


_INT32 = {DataType.Int16: 16, DataType.Int32: 32, DataType.UInt16: 16, DataType.UInt32: 32}
_SIGNED = {DataType.Int16, DataType.Int32, DataType.Int64}
_INT64 = {DataType.Int64, DataType.UInt64}


@dataclass(frozen=True)
class MetricDef:
    """A metric as declared in a birth. `unit` goes into the `engUnit` property."""

    name: str
    alias: int
    datatype: DataType
    unit: str | None = None
    writable: bool = False


Metric = tuple[MetricDef, Any]


def coerce(datatype: DataType, value: Any) -> Any:
    """The value in the metric's datatype; None (null) for what cannot be represented."""
    if value is None:
        return None
    if datatype is DataType.String:
        return value if isinstance(value, str) else str(value)
    if datatype is DataType.Boolean:
        return value if isinstance(value, bool) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if datatype is DataType.Double:
        return float(value) if math.isfinite(value) else None
    if isinstance(value, float) and not value.is_integer():
        return None
    ivalue = int(value)
    bits = _INT32.get(datatype, 64)
    lo, hi = (
        (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if datatype in _SIGNED else (0, (1 << bits) - 1)
    )
    return ivalue if lo <= ivalue <= hi else None


def _put(m: pb.Payload.Metric, datatype: DataType, value: Any) -> None:
    """Set an already coerced value."""
    if value is None:
        m.is_null = True
    elif datatype is DataType.Double:
        m.double_value = value
    elif datatype is DataType.Boolean:
        m.boolean_value = value
    elif datatype is DataType.String:
        m.string_value = value
    elif datatype in _INT64:
        m.long_value = value & 0xFFFF_FFFF_FFFF_FFFF  # two's complement for signed types
    else:
        m.int_value = value & 0xFFFF_FFFF


def _get(m: pb.Payload.Metric, datatype: int) -> Any:
    if m.is_null:
        return None
    field = m.WhichOneof("value")
    if field is None:
        return None
    raw = getattr(m, field)
    if field == "int_value" and datatype in _SIGNED:
        bits = _INT32.get(DataType(datatype), 32)
        raw &= (1 << bits) - 1
        return raw - (1 << bits) if raw >> (bits - 1) else raw
    if field == "long_value" and datatype in _SIGNED:
        return raw - (1 << 64) if raw >> 63 else raw
    return raw


def _properties(m: pb.Payload.Metric, d: MetricDef) -> None:
    keys = m.properties.keys
    values = m.properties.values
    if d.unit:
        keys.append("engUnit")
        v = values.add()
        v.type = DataType.String
        v.string_value = d.unit
    keys.append("readOnly")
    v = values.add()
    v.type = DataType.Boolean
    v.boolean_value = not d.writable


def birth(ts_ms: int, seq: int, metrics: list[Metric]) -> bytes:
    """NBIRTH or DBIRTH: every metric with name, alias, datatype, properties and value."""
    p = pb.Payload(timestamp=ts_ms, seq=seq)
    for d, value in metrics:
        m = p.metrics.add(name=d.name, datatype=d.datatype, timestamp=ts_ms)
        if d.alias:
            m.alias = d.alias
        _properties(m, d)
        _put(m, d.datatype, coerce(d.datatype, value))
    return p.SerializeToString()


def data(ts_ms: int, seq: int, metrics: list[Metric]) -> bytes:
    """NDATA or DDATA: changed metrics by alias only; values already `coerce`d."""
    p = pb.Payload(timestamp=ts_ms, seq=seq)
    for d, value in metrics:
        m = p.metrics.add(alias=d.alias, timestamp=ts_ms)
        _put(m, d.datatype, value)
    return p.SerializeToString()


def ndeath(bd_seq: int, ts_ms: int) -> bytes:
    """The will: `bdSeq` of the connection it was registered on, no `seq`."""
    p = pb.Payload(timestamp=ts_ms)
    p.metrics.add(name="bdSeq", datatype=DataType.Int64, long_value=bd_seq)
    return p.SerializeToString()


def ddeath(ts_ms: int, seq: int) -> bytes:
    return pb.Payload(timestamp=ts_ms, seq=seq).SerializeToString()


@dataclass(frozen=True)
class CmdMetric:
    """One metric of an NCMD/DCMD: by name or by alias, with its decoded value."""

    name: str | None
    alias: int | None
    datatype: int | None
    value: Any


def decode_cmd(raw: bytes) -> list[CmdMetric]:
    """Decode an NCMD/DCMD payload. Raises ValueError when it is not a Sparkplug payload."""
    p = pb.Payload()
    try:
        p.ParseFromString(raw)
    except Exception as exc:  # protobuf raises its own DecodeError
        raise ValueError(f"not a Sparkplug B payload: {exc}") from None
    out = []
    for m in p.metrics:
        dt = m.datatype if m.HasField("datatype") else None
        out.append(
            CmdMetric(
                m.name if m.HasField("name") else None,
                m.alias if m.HasField("alias") else None,
                dt,
                _get(m, dt or 0),
            )
        )
    return out
