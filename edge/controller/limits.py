"""Power limits in force and setpoint arithmetic, all in W (field notes B6: one unit everywhere).

Internal sign convention: a setpoint is *signed W at the AC side, positive = discharge (export),
negative = charge*. The inverter's own convention is applied only when writing (charge_sign).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

OPERATOR_LIMIT = "operator limit"  # the source named when cmd/limit binds


@dataclass(frozen=True)
class Candidate:
    source: str
    charge_w: float | None
    discharge_w: float | None


@dataclass(frozen=True)
class Limits:
    """The lowest of every known limit. 0 W when the battery's own limits are unknown."""

    charge_w: float
    discharge_w: float
    charge_source: str
    discharge_source: str

    @property
    def source(self) -> str:
        if self.charge_source == self.discharge_source:
            return self.charge_source
        return f"charge: {self.charge_source}; discharge: {self.discharge_source}"

    def as_dict(self) -> dict[str, object]:
        return {
            "charge_w": round(self.charge_w, 3),
            "discharge_w": round(self.discharge_w, 3),
            "source": self.source,
        }

    def clamp(self, signed_w: float) -> float:
        """Clamp a signed setpoint (+ discharge, - charge) into [-charge_w, +discharge_w]."""
        return max(-self.charge_w, min(self.discharge_w, signed_w))


def _finite_nonneg(x: float | None) -> float | None:
    if x is None or isinstance(x, bool) or not math.isfinite(x):
        return None
    return max(0.0, float(x))


def compute_limits(
    *,
    battery_v: float | None,
    a_cha_max: float | None,
    a_discha_max: float | None,
    w_cha_rte_max: float | None,
    w_discha_rte_max: float | None,
    inverter_charge_w: float | None,
    inverter_discharge_w: float | None,
    configured_charge_w: float | None,
    configured_discharge_w: float | None,
    operator_charge_w: float | None = None,
    operator_discharge_w: float | None = None,
) -> Limits:
    """min(AChaMax*V, WChaRteMax, inverter rating, configured, operator) for each direction.

    The operator run-time limit (cmd/limit) is one more candidate of the min(): it can only
    lower the limits in force, never raise them.

    Unknown values are skipped, but a direction whose battery limits (A*V or WRteMax) are both
    unknown is limited to 0 W: the controller never commands what it cannot check.
    """
    v = _finite_nonneg(battery_v)
    cands = [
        Candidate(
            "battery AChaMax*V / ADisChaMax*V",
            None if v is None or _finite_nonneg(a_cha_max) is None else v * a_cha_max,  # type: ignore[operator]
            None if v is None or _finite_nonneg(a_discha_max) is None else v * a_discha_max,  # type: ignore[operator]
        ),
        Candidate("battery WChaRteMax / WDisChaRteMax", w_cha_rte_max, w_discha_rte_max),
        Candidate("inverter rating", inverter_charge_w, inverter_discharge_w),
        Candidate(
            "configured max_charge_w / max_discharge_w", configured_charge_w, configured_discharge_w
        ),
        Candidate(OPERATOR_LIMIT, operator_charge_w, operator_discharge_w),
    ]
    battery = cands[:2]

    def pick(direction: str) -> tuple[float, str]:
        def val(c: Candidate) -> float | None:
            return _finite_nonneg(c.charge_w if direction == "charge" else c.discharge_w)

        if all(val(c) is None for c in battery):
            return 0.0, "battery limits unknown"
        known = [(val(c), c.source) for c in cands if val(c) is not None]
        best, src = min(known, key=lambda t: t[0])  # type: ignore[arg-type,return-value]
        name = src
        if src.startswith("battery AChaMax"):
            name = "battery AChaMax*V" if direction == "charge" else "battery ADisChaMax*V"
        elif src.startswith("battery WCha"):
            name = "battery WChaRteMax" if direction == "charge" else "battery WDisChaRteMax"
        elif src.startswith("configured"):
            name = (
                "configured max_charge_w" if direction == "charge" else "configured max_discharge_w"
            )
        return float(best), name  # type: ignore[arg-type]

    cw, cs = pick("charge")
    dw, ds = pick("discharge")
    return Limits(cw, dw, cs, ds)


def ramp_toward(current_w: float, target_w: float, max_step_w: float) -> float:
    """One ramp step from current to target; max_step_w <= 0 means no ramp."""
    if max_step_w <= 0 or abs(target_w - current_w) <= max_step_w:
        return target_w
    return current_w + math.copysign(max_step_w, target_w - current_w)


def to_device(signed_w: float, charge_sign: int) -> float:
    """Internal (+discharge) to the inverter's convention: charge has the sign `charge_sign`."""
    return -charge_sign * signed_w if signed_w else 0.0
