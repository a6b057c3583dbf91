"""`[controller]`: the BESS controller. Filled in by the controller work."""

from __future__ import annotations

from marshmallow import Schema


class ControllerSchema(Schema):
    pass
