"""`self_consumption`: hold grid exchange at 0 W within `deadband_w`.

The battery soaks up export (PV surplus) and covers import, closed loop on the meter like
peak shaving. With `zero_export` the battery never discharges more than the site consumes:
its discharge is capped at what the meter shows the site importing plus what it already gives.
"""

from __future__ import annotations

from typing import ClassVar

from marshmallow import validate

from edge.controller.modes.base import Flag, Mode, Number, ParamsSchema, SiteView, Want, kw


class SelfConsumptionParams(ParamsSchema):
    deadband_w = Number(load_default=100.0, validate=validate.Range(min=0, max=1e9))
    zero_export = Flag(load_default=False)
    gain = Number(load_default=0.5, validate=validate.Range(0, 1, min_inclusive=False))


class SelfConsumption(Mode):
    name = "self_consumption"
    params_schema: ClassVar = SelfConsumptionParams
    needs_meter = True

    def step(self, site: SiteView) -> Want:
        p = self.params
        if site.grid_w is None:
            return Want(0.0, "no meter reading, hold")
        grid, now_w, band = site.grid_w, site.setpoint_w, float(p["deadband_w"])
        if abs(grid) <= band:
            want, how = now_w, f"grid {kw(grid)} within deadband {band:g} W"
        else:
            want = now_w + p["gain"] * grid
            how = f"{'import' if grid > 0 else 'export'} {kw(abs(grid))}"
        if p["zero_export"] and want > 0:
            cap = max(0.0, now_w + grid)  # the discharge that brings the grid to exactly 0
            if want > cap:
                want, how = cap, f"{how}, zero_export caps discharge at {kw(cap)}"
        if want > 0:
            return Want(want, f"{how}, discharge {kw(want)}")
        if want < 0:
            return Want(want, f"{how}, charge {kw(-want)}")
        return Want(0.0, f"{how}, hold")
