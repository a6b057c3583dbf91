"""What a family's physics tells the generic inverter: its registers, when it is on, what its
setpoint registers ask for, its revert timers, and how it shows the power it delivers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from edge.families import Family, by_sim_profile

if TYPE_CHECKING:
    from adapters.simulator.physics.inverter import InverterPhysics


@dataclass
class Timer:
    """A revert timer: `left` seconds until the setpoint is dropped (None = not armed)."""

    left: float | None = None


class FamilyPhysics:
    """Base class: one instance per simulated inverter, holding the family's own state."""

    sim_profile: ClassVar[str]
    # Counts for models with repeating groups (705 curves, 711 controls), by model id.
    MODEL_DATA: ClassVar[dict[int, dict[str, int]]] = {}

    def __init__(self, inv: InverterPhysics) -> None:
        self.inv = inv
        self.img = inv.img

    @classmethod
    def family(cls) -> Family:
        return by_sim_profile(cls.sim_profile)

    def init_registers(self) -> None:
        raise NotImplementedError

    def on_write(self, names: set[str]) -> None:
        """Points just written over Modbus (re-arm timers, reload counters)."""

    def faulted(self) -> bool:
        raise NotImplementedError

    def is_on(self) -> bool:
        return not self.faulted()

    def wmax_setting(self) -> float | None:
        """The WMax setting register, None when the family has none."""
        return None

    def requested_w(self, wmax: float) -> float:
        raise NotImplementedError

    def timers(self) -> list[tuple[Timer, Callable[[], None]]]:
        """(timer, what to do when it expires); counted in clock seconds."""
        return []

    def tick(self, dt: float) -> None:
        """Family-specific state that runs in simulated time (a heartbeat countdown)."""

    def grid_delta(self, base_w: float, wmax: float, dt: float) -> float:
        """What the inverter's own grid support adds to the setpoint now (W); 0 without."""
        return 0.0

    def reactive(self, p_w: float, wmax: float, dt: float) -> float:
        """Reactive power the inverter's own grid support delivers now (VAr)."""
        return 0.0

    def publish(self, p: float) -> None:
        raise NotImplementedError

    def tms(self, model: int, point: str) -> float | None:
        v = self.img.get(model, point)
        return float(v) if isinstance(v, (int, float)) and v > 0 else None
