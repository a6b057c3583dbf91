"""The site file (TOML): one file for broker, simulator, devices, controller and bridge.

Each section's schema lives in its own module; this one composes them and turns every
problem into a ConfigError naming the file, the key path and the reason.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from edge.config.bridge import BridgeSchema
from edge.config.broker import BrokerSchema
from edge.config.controller import ControllerSchema
from edge.config.devices import DeviceSchema
from edge.config.errors import ConfigError, flatten_messages
from edge.config.simulator import SimulatorSchema
from edge.mqtt.client import BrokerSettings
from edge.mqtt.topics import NAME_RE


class SiteSectionSchema(Schema):
    id = fields.String(
        required=True,
        validate=validate.Regexp(NAME_RE, error="must match {regex} (lower-case, digits, _ or -)"),
    )


class SiteFileSchema(Schema):
    site = fields.Nested(SiteSectionSchema, required=True)
    broker = fields.Nested(BrokerSchema, load_default=None)
    simulator = fields.Nested(SimulatorSchema, load_default=None)
    devices = fields.List(fields.Nested(DeviceSchema), load_default=list)
    controller = fields.Nested(ControllerSchema, load_default=None)
    bridge = fields.Nested(BridgeSchema, load_default=None)

    @validates("devices")
    def unique_device_names(self, value: list[Any], **_: Any) -> None:
        names = [d.get("name") if isinstance(d, dict) else getattr(d, "name", None) for d in value]
        dupes = sorted({n for n in names if n is not None and names.count(n) > 1})
        if dupes:
            raise ValidationError(f"device names must be unique; repeated: {', '.join(dupes)}")

    @validates_schema
    def soc_monitor_outlasts_refresh(self, data: dict[str, Any], **_: Any) -> None:
        """An unchanged SoC is republished only every `refresh_s` (publish by exception), so a
        SoC monitor shorter than that trips the site on a quiet, healthy battery."""
        ctl = data.get("controller")
        if ctl is None:
            return
        for dev in data.get("devices") or []:
            if (
                getattr(dev, "name", None) == ctl.battery
                and ctl.soc_monitor_max_time <= dev.refresh_s
            ):
                raise ValidationError(
                    f"must be greater than the battery adapter's refresh_s ({dev.refresh_s:g} s): "
                    "an unchanged SoC is republished only that often",
                    "controller.soc_monitor_max_time",
                )


@dataclass
class SiteConfig:
    site: str
    broker: BrokerSettings
    path: str = "<memory>"
    simulator: Any = None
    devices: list[Any] = field(default_factory=list)
    controller: Any = None
    bridge: Any = None


def parse_site(data: dict[str, Any], path: str = "<memory>") -> SiteConfig:
    """Validate an already-parsed site document."""
    try:
        loaded = SiteFileSchema().load(data)
    except ValidationError as exc:
        raise ConfigError(path, list(flatten_messages(exc.messages))) from None
    return SiteConfig(
        site=loaded["site"]["id"],
        broker=loaded["broker"] or BrokerSettings(),
        path=path,
        simulator=loaded["simulator"],
        devices=loaded["devices"],
        controller=loaded["controller"],
        bridge=loaded["bridge"],
    )


def load_site(path: str | Path) -> SiteConfig:
    """Read and validate a site file. Raises ConfigError for every kind of problem."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(str(p), [("", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(p), [("", f"not valid TOML: {exc}")]) from None
    except RecursionError:  # tomllib recurses per nesting level: `a = [[[[...` 1000 deep
        raise ConfigError(
            str(p), [("", "not usable TOML: arrays or tables nested too deeply")]
        ) from None
    return parse_site(data, str(p))
