"""The setpoint pipeline: what every mode's output passes through before it is written.

Always and in this order: the SoC bounds (soc_high/soc_low limits and the backup reserve
floor), the battery and inverter limits in force, the ramp. The lease (the setpoint rewritten
before the device's revert timer) is the controller's job and changes no value. Pure: the
controller and the backtest call the same `apply`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edge.controller.config import ControllerSettings
from edge.controller.limits import ramp_toward
from edge.controller.modes.base import SiteView

BOUNDS = (
    "none",
    "soc_unknown",
    "soc_high",
    "soc_low",
    "backup_reserve",
    "charge_limit",
    "discharge_limit",
    "ramp",
)


@dataclass(frozen=True)
class PipelineSettings:
    soc_high_limit: float = 90.0
    soc_low_limit: float = 10.0
    backup_reserve_soc: float = 0.0  # no discharge at or below this SoC (%), under every mode
    ramp_w_per_s: float = 0.0  # 0: no ramp

    @classmethod
    def of(cls, s: ControllerSettings) -> PipelineSettings:
        return cls(s.soc_high_limit, s.soc_low_limit, s.backup_reserve_soc, s.ramp_w_per_s)


@dataclass(frozen=True)
class Applied:
    power_w: float  # what will be written (+ discharge, - charge)
    bound_by: str  # one of BOUNDS: the first stage that changed the wanted power


def soc_window(soc: float | None, s: PipelineSettings) -> tuple[float, float, str, str]:
    """(lowest, highest) power the SoC allows, and what bounds each side ("" = unbounded)."""
    if soc is None or not math.isfinite(soc):
        return 0.0, 0.0, "soc_unknown", "soc_unknown"
    lo, hi, lo_by, hi_by = -math.inf, math.inf, "", ""
    if soc >= s.soc_high_limit:
        lo, lo_by = 0.0, "soc_high"
    floor, floor_by = s.soc_low_limit, "soc_low"
    if s.backup_reserve_soc > floor:
        floor, floor_by = s.backup_reserve_soc, "backup_reserve"
    if soc <= floor:
        hi, hi_by = 0.0, floor_by
    return lo, hi, lo_by, hi_by


def apply(
    want_w: float, site: SiteView, settings: PipelineSettings, prev_w: float, dt_s: float
) -> Applied:
    """The power to write for `want_w`, given the site, from `prev_w` written `dt_s` ago.

    The result always lies within the SoC window and the limits, whatever `want_w` and
    `prev_w` are: the ramp starts from `prev_w` clamped into them, so a bound that tightens
    applies at once and only moves away from a bound are ramped.
    """
    if not math.isfinite(want_w):
        want_w = 0.0
    lo, hi, lo_by, hi_by = soc_window(site.soc, settings)
    bound = "none"
    w = want_w
    if w < lo:
        w, bound = lo, lo_by
    elif w > hi:
        w, bound = hi, hi_by
    charge_w = max(0.0, site.charge_limit_w)
    discharge_w = max(0.0, site.discharge_limit_w)
    lo, hi = max(lo, -charge_w), min(hi, discharge_w)
    if w < lo:
        w, bound = lo, bound if bound != "none" else "charge_limit"
    elif w > hi:
        w, bound = hi, bound if bound != "none" else "discharge_limit"
    if settings.ramp_w_per_s > 0:
        base = min(hi, max(lo, prev_w if math.isfinite(prev_w) else 0.0))
        step = settings.ramp_w_per_s * max(0.0, dt_s)
        ramped = ramp_toward(base, w, step) if step > 0 else base
        if ramped != w:
            w, bound = ramped, bound if bound != "none" else "ramp"
    return Applied(w, bound)
