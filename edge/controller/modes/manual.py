"""`manual`: the operator's setpoint, as `charge`, `discharge` and `hold` set it."""

from __future__ import annotations

from typing import ClassVar

from marshmallow import validate

from edge.controller.modes.base import Mode, Number, ParamsSchema, SiteView, Want, kw


class ManualParams(ParamsSchema):
    # + discharge, - charge; 0 = hold
    power_w = Number(load_default=0.0, validate=validate.Range(-1e9, 1e9))


class Manual(Mode):
    name = "manual"
    params_schema: ClassVar = ManualParams
    needs_meter = False

    def step(self, site: SiteView) -> Want:
        w = float(self.params["power_w"])
        if w > 0:
            return Want(w, f"discharge {kw(w)} as commanded")
        if w < 0:
            return Want(w, f"charge {kw(-w)} as commanded")
        return Want(0.0, "hold as commanded")
