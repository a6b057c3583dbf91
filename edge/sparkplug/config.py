"""`[sparkplug]`: the Sparkplug B edge node (edge/sparkplug/README.md). Absent: off."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate

from edge.mqtt.topics import NAME_RE, SPARKPLUG_ID_RE

_ID_ERROR = "must be 1-64 characters without '/', '+' or '#'"


@dataclass(frozen=True)
class SparkplugConfig:
    enabled: bool = True
    group_id: str = "bess"
    edge_node_id: str | None = None  # default: the site id
    primary_host_id: str | None = None  # wait for this host's STATE before birth
    devices: tuple[str, ...] | None = None  # None: every device that publishes `meta`
    controller: bool = True  # the controller as device `controller`
    publish_interval_s: float = 0.1  # DDATA gathers the changes of this period
    write_timeout_s: float = 5.0


def _device(value: str) -> None:
    if not NAME_RE.match(value):
        raise ValidationError(f"{value!r} must match {NAME_RE.pattern}")


class SparkplugSchema(Schema):
    enabled = fields.Boolean(load_default=True)
    group_id = fields.String(
        load_default="bess", validate=validate.Regexp(SPARKPLUG_ID_RE, error=_ID_ERROR)
    )
    edge_node_id = fields.String(
        load_default=None, validate=validate.Regexp(SPARKPLUG_ID_RE, error=_ID_ERROR)
    )
    primary_host_id = fields.String(
        load_default=None, validate=validate.Regexp(SPARKPLUG_ID_RE, error=_ID_ERROR)
    )
    devices = fields.List(fields.String(validate=_device), load_default=None)
    controller = fields.Boolean(load_default=True)
    publish_interval_s = fields.Float(load_default=0.1, validate=validate.Range(0.01, 60))
    write_timeout_s = fields.Float(load_default=5.0, validate=validate.Range(0.1, 60))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> SparkplugConfig:
        if data["devices"] is not None:
            data["devices"] = tuple(data["devices"])
        return SparkplugConfig(**data)


def section() -> fields.Field:
    """The site file's `[sparkplug]` section, registered under `bess_edge.config`."""
    return fields.Nested(SparkplugSchema, load_default=None)
