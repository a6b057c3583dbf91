"""`[[devices]]`: the Modbus devices the adapters serve. Filled in by the adapter work."""

from __future__ import annotations

from marshmallow import Schema


class DeviceSchema(Schema):
    pass
