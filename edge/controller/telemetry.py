"""Latest point values and device status, stamped with the injected clock.

The controller reads devices only from their MQTT point topics; this store is what it knows.
`None` means "not implemented / not available", exactly as on the topic (topics.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sample:
    value: Any
    at: float


@dataclass
class Telemetry:
    clock: Callable[[], float]
    _values: dict[tuple[str, str, str], Sample] = field(default_factory=dict)
    _status: dict[str, Sample] = field(default_factory=dict)

    def update(self, device: str, model: str, point: str, value: Any) -> None:
        self._values[(device, str(model), point)] = Sample(value, self.clock())

    def set_status(self, device: str, status: str) -> None:
        self._status[device] = Sample(status, self.clock())

    def status(self, device: str) -> str | None:
        s = self._status.get(device)
        return None if s is None else str(s.value)

    def sample(self, device: str, model: str | int, point: str) -> Sample | None:
        return self._values.get((device, str(model), point))

    def get(self, device: str, model: str | int, point: str) -> Any:
        s = self.sample(device, model, point)
        return None if s is None else s.value

    def number(self, device: str, model: str | int, point: str) -> float | None:
        """The value as a float, or None when absent, null or not a finite number."""
        v = self.get(device, model, point)
        if isinstance(v, bool) or not isinstance(v, int | float):
            return None
        f = float(v)
        return f if f == f and abs(f) != float("inf") else None

    def age(self, device: str, model: str | int, point: str) -> float | None:
        s = self.sample(device, model, point)
        return None if s is None else self.clock() - s.at
