"""What every device's physics shares: states, scale-factor choice, model 1, energy counters."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from adapters.simulator.config import SimDeviceConfig
from adapters.simulator.registers import SunSpecImage

STATE_DISCONNECTED = 1
STATE_INITIALIZING = 2
STATE_CONNECTED = 3
STATE_FAULT = 99
SETOP_CONNECT = 1
SETOP_DISCONNECT = 2
NOMINAL_LL_V = 480.0  # line-to-line AC voltage of every simulated device
SQRT3 = math.sqrt(3)


def put(
    setter: Callable[[int | str, str, Any], None],
    model: int | str,
    pairs: Iterable[tuple[str, Any]],
) -> None:
    """Set several points of one model."""
    for name, val in pairs:
        setter(model, name, val)


def pick_sf(max_abs: float, signed: bool = True) -> int:
    """The smallest scale factor >= -3 that keeps `max_abs` within the register range."""
    limit = 32000 if signed else 65000
    sf = -3
    while max_abs / math.pow(10, sf) > limit and sf < 10:
        sf += 1
    return sf


def set_common(img: SunSpecImage, cfg: SimDeviceConfig, md: str) -> None:
    img.set(1, "Mn", "bess-edge")
    img.set(1, "Md", md)
    img.set(1, "Opt", cfg.profile)
    img.set(1, "Vr", "0.1.0")
    img.set(1, "SN", f"SIM-{cfg.name}")
    img.set(1, "DA", cfg.unit_id)


def phase_amps(w: float) -> float:
    """AC current per phase of a balanced three-phase flow of `w` W at unity power factor."""
    return abs(w) / (NOMINAL_LL_V * SQRT3)


@dataclass
class EnergyCounter:
    """Energy through a device, kept in float Wh so that small steps are not rounded away.

    `forward_wh` counts positive power (discharge, export by an inverter, import at the
    meter, generation), `reverse_wh` negative power. Registers show whole Wh.
    """

    forward_wh: float = 0.0
    reverse_wh: float = 0.0

    def add(self, w: float, dt: float) -> None:
        if w > 0:
            self.forward_wh += w * dt / 3600.0
        elif w < 0:
            self.reverse_wh -= w * dt / 3600.0
