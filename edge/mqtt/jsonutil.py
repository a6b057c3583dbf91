"""Strict JSON: NaN and Infinity are not JSON, so they are refused both ways."""

from __future__ import annotations

import json
from typing import Any

MAX_PAYLOAD_BYTES = 64 * 1024


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def loads(data: bytes | str) -> Any:
    """Parse JSON, refusing NaN/Infinity and payloads over MAX_PAYLOAD_BYTES."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload is {len(data)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit")
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return json.loads(data, parse_constant=_refuse_constant)


def dumps(obj: Any) -> str:
    """Serialise compactly; raises ValueError on NaN/Infinity instead of emitting invalid JSON."""
    return json.dumps(obj, allow_nan=False, separators=(",", ":"))
