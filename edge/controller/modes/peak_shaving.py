"""`peak_shaving`: keep grid import at or below `target_w`.

Closed loop on the meter: the setpoint moves by `gain` x the error each tick (an integrator
whose state is the setpoint in force, so it cannot wind up past the limits). It recharges from
the grid only while import stays below `recharge_below_w`, at most `recharge_w`, so recharging
never makes a new peak.
"""

from __future__ import annotations

from typing import Any, ClassVar

from marshmallow import ValidationError, validate, validates_schema

from edge.controller.modes.base import Mode, Number, ParamsSchema, SiteView, Want, kw


class PeakShavingParams(ParamsSchema):
    target_w = Number(required=True, validate=validate.Range(min=0, max=1e9))
    recharge_below_w = Number(load_default=None, validate=validate.Range(min=0, max=1e9))
    recharge_w = Number(load_default=0.0, validate=validate.Range(min=0, max=1e9))
    gain = Number(load_default=0.5, validate=validate.Range(0, 1, min_inclusive=False))

    @validates_schema
    def below_target(self, data: dict[str, Any], **_: Any) -> None:
        rb, target = data.get("recharge_below_w"), data.get("target_w")
        if rb is not None and target is not None and rb > target:
            raise ValidationError(
                f"must not exceed target_w ({target:g}): recharging would make a new peak",
                "recharge_below_w",
            )


class PeakShaving(Mode):
    name = "peak_shaving"
    params_schema: ClassVar = PeakShavingParams
    needs_meter = True

    def step(self, site: SiteView) -> Want:
        p = self.params
        target = float(p["target_w"])
        if site.grid_w is None:
            return Want(0.0, "no meter reading, hold")
        grid, now_w = site.grid_w, site.setpoint_w
        # Discharge branch: raise the discharge while import is above the target, lower it
        # (down to 0) while import is below.
        d = now_w + p["gain"] * (grid - target)
        if d > 0:
            if grid > target:
                return Want(d, f"import {kw(grid)} > target {kw(target)}, discharge {kw(d)}")
            return Want(d, f"import {kw(grid)} <= target {kw(target)}, discharge {kw(d)}")
        rb = p["recharge_below_w"]
        cap = float(p["recharge_w"])
        if rb is None or cap <= 0:
            return Want(0.0, f"import {kw(grid)} <= target {kw(target)}, hold")
        c = max(-cap, min(0.0, now_w + p["gain"] * (grid - float(rb))))
        if c < 0:
            return Want(c, f"import {kw(grid)} < recharge_below {kw(rb)}, recharge {kw(-c)}")
        return Want(0.0, f"import {kw(grid)} <= target {kw(target)}, hold")
