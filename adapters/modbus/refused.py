"""Points a device refuses on their own: tracked, retried rarely with capped backoff. Pure:
the caller passes the time in (monotonic for scheduling, wall for `meta`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.modbus.plan import ReadBlock, backoff


@dataclass
class Refusal:
    block: ReadBlock  # the point's own request (with its scale factor where it fits)
    code: int
    since: float  # wall time, for meta
    attempts: int = 0
    next_try: float = 0.0


@dataclass
class RefusedPoints:
    """`refuse` when a single-point read is refused; `due` lists the retries to make now."""

    retry_min_s: float
    retry_max_s: float
    points: dict[str, Refusal] = field(default_factory=dict)

    def refuse(self, key: str, block: ReadBlock, code: int, now: float, wall: float) -> bool:
        """Record a refusal (or a failed retry). True when the point is newly unreadable."""
        r = self.points.get(key)
        new = r is None
        if r is None:
            r = self.points[key] = Refusal(block, code, wall)
        r.code = code
        r.next_try = now + backoff(r.attempts, self.retry_min_s, self.retry_max_s)
        r.attempts += 1
        return new

    def due(self, now: float) -> list[tuple[str, ReadBlock]]:
        return [(k, r.block) for k, r in self.points.items() if r.next_try <= now]

    def next_due(self) -> float | None:
        return min((r.next_try for r in self.points.values()), default=None)

    def restored(self, key: str) -> ReadBlock | None:
        r = self.points.pop(key, None)
        return r.block if r is not None else None

    def clear(self) -> None:
        self.points.clear()

    def meta(self) -> dict[str, Any]:
        return {
            k: {"modbus_code": r.code, "since": round(r.since, 3)}
            for k, r in sorted(self.points.items())
        }
