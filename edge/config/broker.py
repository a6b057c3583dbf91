"""`[broker]`: where the site's MQTT broker is."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, post_load, validate

from edge.mqtt.client import BrokerSettings, TlsSettings


class TlsSchema(Schema):
    ca_file = fields.String(required=True)
    cert_file = fields.String(load_default=None)
    key_file = fields.String(load_default=None)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> TlsSettings:
        return TlsSettings(**data)


class BrokerSchema(Schema):
    host = fields.String(load_default="127.0.0.1")
    port = fields.Integer(load_default=1883, validate=validate.Range(1, 65535))
    keepalive = fields.Integer(
        load_default=5,
        validate=validate.Range(1, 3600),
        metadata={"doc": "s; the broker fires our will after 1.5x keepalive of silence"},
    )
    username = fields.String(load_default=None)
    password = fields.String(load_default=None)
    tls = fields.Nested(TlsSchema, load_default=None)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> BrokerSettings:
        return BrokerSettings(**data)
