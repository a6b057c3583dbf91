"""`soc_target`: reach `target_soc` % by time `by` at the lowest constant power that gets there.

Each tick the power is the energy still to move divided by the time left, so it stays constant
while the battery follows and corrects itself when it does not (losses, a limit that bound).
After `by`, or once within `tolerance_soc` of the target, it holds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from marshmallow import fields, validate

from edge.controller.modes.base import Mode, Number, ParamsSchema, SiteView, Want, kw


class AwareDateTime(fields.AwareDateTime):
    default_error_messages = {
        "invalid": "expected an ISO-8601 date and time with a UTC offset",
        "invalid_awareness": "expected an ISO-8601 date and time with a UTC offset",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class SocTargetParams(ParamsSchema):
    target_soc = Number(required=True, validate=validate.Range(0, 100))
    by = AwareDateTime(required=True, format="iso")
    max_power_w = Number(load_default=None, validate=validate.Range(min=0, max=1e9))
    tolerance_soc = Number(load_default=0.5, validate=validate.Range(0, 10))


class SocTarget(Mode):
    name = "soc_target"
    params_schema: ClassVar = SocTargetParams
    needs_meter = False

    def step(self, site: SiteView) -> Want:
        p = self.params
        target = float(p["target_soc"])
        by: datetime = p["by"]
        if site.soc is None:
            return Want(0.0, "SoC unknown, hold")
        if site.capacity_wh is None or site.capacity_wh <= 0:
            return Want(0.0, "battery capacity unknown, hold")
        diff = target - site.soc
        if abs(diff) <= p["tolerance_soc"]:
            return Want(0.0, f"soc {site.soc:.1f} % at target {target:g} %, hold")
        left_s = by.timestamp() - site.now
        if left_s <= 0:
            return Want(
                0.0, f"past {by.isoformat()}: soc {site.soc:.1f} % (target {target:g} %), hold"
            )
        w = abs(diff) / 100.0 * site.capacity_wh * 3600.0 / left_s
        how = f"soc {site.soc:.1f} % -> {target:g} % in {left_s / 60:.0f} min"
        cap = p["max_power_w"]
        if cap is not None and w > cap:
            w, how = float(cap), f"{how}, capped at max_power_w {kw(cap)}"
        if diff > 0:
            return Want(-w, f"{how}, charge {kw(w)}")
        return Want(w, f"{how}, discharge {kw(w)}")
