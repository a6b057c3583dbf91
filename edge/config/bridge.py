"""`[bridge]`: the IEEE 2030.5 bridge. Filled in by the bridge work."""

from __future__ import annotations

from marshmallow import Schema


class BridgeSchema(Schema):
    pass
