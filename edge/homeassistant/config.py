"""`[homeassistant]`: Home Assistant MQTT discovery (edge/homeassistant/README.md). Absent: off."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates

from edge.mqtt.topics import HA_PREFIX, NAME_RE

# The operating modes of the controller's `cmd/mode` (topics.md, "Controller").
MODES = ("manual", "peak_shaving", "self_consumption", "soc_target")
DEFAULT_POINTS = {
    "soc": "battery/802/SoC",
    "battery_w": "inverter/701/W",
    "grid_w": "meter/203/W",
}
_ID = validate.Regexp(r"^[A-Za-z0-9_-]{1,64}$", error="must be 1-64 letters, digits, _ or -")


@dataclass(frozen=True)
class HomeAssistantConfig:
    enabled: bool = True
    prefix: str = HA_PREFIX
    node_id: str | None = None  # default: bess_{site}
    name: str | None = None  # the device's name in Home Assistant; default: BESS {site}
    points: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_POINTS))
    devices: tuple[str, ...] = ("battery", "inverter", "meter")
    max_charge_w: float = 100000.0
    max_discharge_w: float = 100000.0
    mode_params: dict[str, dict[str, Any]] = field(default_factory=dict)


class HomeAssistantSchema(Schema):
    enabled = fields.Boolean(load_default=True)
    prefix = fields.String(load_default=HA_PREFIX, validate=_ID)
    node_id = fields.String(load_default=None, validate=_ID)
    name = fields.String(load_default=None, validate=validate.Length(1, 64))
    points = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    devices = fields.List(fields.String(), load_default=lambda: ["battery", "inverter", "meter"])
    max_charge_w = fields.Float(load_default=100000.0, validate=validate.Range(1, 10_000_000))
    max_discharge_w = fields.Float(load_default=100000.0, validate=validate.Range(1, 10_000_000))
    mode_params = fields.Dict(keys=fields.String(), values=fields.Dict(), load_default=dict)

    @validates("points")
    def _points(self, value: dict[str, str], **_: Any) -> None:
        for key, path in value.items():
            if key not in DEFAULT_POINTS:
                raise ValidationError(f"{key}: unknown (one of {', '.join(DEFAULT_POINTS)})")
            device, _sep, rest = path.partition("/")
            if not NAME_RE.match(device) or not rest or "+" in rest or "#" in rest:
                raise ValidationError(f"{key}: {path!r} must be '{{device}}/{{model}}/{{point}}'")

    @validates("devices")
    def _devices(self, value: list[str], **_: Any) -> None:
        for d in value:
            if not NAME_RE.match(d):
                raise ValidationError(f"{d!r} must match {NAME_RE.pattern}")

    @validates("mode_params")
    def _modes(self, value: dict[str, Any], **_: Any) -> None:
        for mode in value:
            if mode not in MODES:
                raise ValidationError(f"{mode}: not a mode ({', '.join(MODES)})")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> HomeAssistantConfig:
        data["points"] = {**DEFAULT_POINTS, **data["points"]}
        data["devices"] = tuple(data["devices"])
        return HomeAssistantConfig(**data)


def section() -> fields.Field:
    """The site file's `[homeassistant]` section, registered under `bess_edge.config`."""
    return fields.Nested(HomeAssistantSchema, load_default=None)
