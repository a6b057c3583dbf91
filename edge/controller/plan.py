"""Device writes as data: what a profile wants written, and how a reply confirms it.

A profile never performs I/O. It returns a `Plan` (the writes, in order); the controller core
runs plans one write at a time through its shell, and checks every reply here: a write counts
only when the device's read-back confirms it, 0 included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from edge.controller.faults import Fault


@dataclass(frozen=True)
class PointWrite:
    """One point to write, confirmed by read-back within `tol` (None: acknowledgement only)."""

    device: str
    model: str
    point: str
    value: Any
    tol: float | None = 0.5


Plan = list[PointWrite]


class WriteFailed(Exception):
    """A write that was refused, timed out or whose read-back differs. Always a fault."""

    def __init__(self, device: str, model: str, point: str, value: Any, reason: str) -> None:
        super().__init__(f"write {device}/{model}/{point}={value!r} failed: {reason}")
        self.device, self.model, self.point, self.value, self.reason = (
            device,
            model,
            point,
            value,
            reason,
        )

    @classmethod
    def of(cls, w: PointWrite, reason: str) -> WriteFailed:
        return cls(w.device, w.model, w.point, w.value, reason)

    def fault(self) -> Fault:
        return Fault("write_failed", str(self))


class Unsupported(Exception):
    """The profile cannot do what was asked (for example a power factor)."""


def check_reply(reply: Any, value: Any, tol: float | None) -> str | None:
    """Why a write reply does not confirm `value`, or None if it does (B5: `False == 0` is no
    confirmation; a missing or non-numeric read-back is no confirmation either). `reply` None
    means no reply came within the write timeout."""
    if reply is None:
        return "no reply (timeout)"
    if not isinstance(reply, dict):
        return "reply is not a JSON object"
    if reply.get("ok") is not True:
        err = reply.get("error")
        if not isinstance(err, dict):
            err = {}
        return f"refused: {err.get('code', 'unknown')} {err.get('message', '')}".strip()
    if tol is None:  # a pulse register (alarm reset): the device acknowledged, nothing to compare
        return None
    rb = reply.get("value")
    if isinstance(value, str):
        return None if rb == value else f"read-back {rb!r} != {value!r}"
    if isinstance(rb, bool) or not isinstance(rb, int | float) or not math.isfinite(rb):
        return f"read-back {rb!r} is not a number"
    if abs(float(rb) - float(value)) > tol:
        return f"read-back {rb!r} != {value!r}"
    return None
