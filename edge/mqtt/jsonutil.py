"""Strict JSON: NaN and Infinity are not JSON, so they are refused both ways."""

from __future__ import annotations

import json
import math
from typing import Any

MAX_PAYLOAD_BYTES = 64 * 1024


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def _finite_float(text: str) -> float:
    # `1e400` is valid JSON syntax but parses to Infinity, which topics.md forbids.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is beyond the range of a JSON number (float overflow)")
    return value


def loads(data: bytes | str) -> Any:
    """Parse JSON, refusing NaN/Infinity (also by overflow), payloads over MAX_PAYLOAD_BYTES
    and nesting too deep for the parser (a RecursionError would escape every handler)."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload is {len(data)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit")
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    try:
        return json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("nested too deeply") from None


# One encoder for every call: json.dumps with options builds a new encoder each time, which
# is a visible part of publishing a telemetry value (tests/perf/bench_adapter.py).
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def dumps(obj: Any) -> str:
    """Serialise compactly; raises ValueError on NaN/Infinity instead of emitting invalid JSON."""
    t = type(obj)
    if t is int:  # telemetry scalars: the same text json writes, without its machinery
        return int.__repr__(obj)
    if t is float and math.isfinite(obj):
        return float.__repr__(obj)
    if obj is None:
        return "null"
    return _ENCODER.encode(obj)
