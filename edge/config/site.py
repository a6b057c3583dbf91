"""The site file (TOML): one file, one section per part of the stack.

`[site]` and `[broker]` belong to edge itself. Every other section is owned by the package
that uses it and registered under the entry-point group `bess_edge.config` (pyproject.toml):
name -> a callable returning the marshmallow field for that section. So `edge` never knows
adapter or simulator settings, and a plug-in package brings its own section. This module
composes the sections and turns every problem into a ConfigError naming the file, the key
path and the reason.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from edge.config.broker import BrokerSchema
from edge.config.errors import ConfigError, flatten_messages
from edge.mqtt.client import BrokerSettings
from edge.mqtt.topics import NAME_RE

CONFIG_GROUP = "bess_edge.config"
CORE_SECTIONS = ("site", "broker")


class SiteSectionSchema(Schema):
    id = fields.String(
        required=True,
        validate=validate.Regexp(NAME_RE, error="must match {regex} (lower-case, digits, _ or -)"),
    )


def registered_sections() -> dict[str, Callable[[], fields.Field]]:
    """Section name -> field factory, from the `bess_edge.config` entry points."""
    found = {ep.name: ep.load() for ep in entry_points(group=CONFIG_GROUP)}
    clash = sorted(set(found) & set(CORE_SECTIONS))
    if clash:
        raise RuntimeError(f"entry points may not redefine core sections: {clash}")
    return dict(sorted(found.items()))


def _soc_monitor_outlasts_refresh(data: dict[str, Any]) -> None:
    """An unchanged SoC is republished only every `refresh_s` (publish by exception), so a
    SoC monitor shorter than that trips the site on a quiet, healthy battery."""
    ctl = data.get("controller")
    if ctl is None:
        return
    for dev in data.get("devices") or []:
        if getattr(dev, "name", None) == ctl.battery and ctl.soc_monitor_max_time <= dev.refresh_s:
            raise ValidationError(
                f"must be greater than the battery adapter's refresh_s ({dev.refresh_s:g} s): "
                "an unchanged SoC is republished only that often",
                "controller.soc_monitor_max_time",
            )


@cache
def site_file_schema() -> type[Schema]:
    """The whole site file's schema: core sections plus every registered one."""
    attrs: dict[str, Any] = {
        "site": fields.Nested(SiteSectionSchema, required=True),
        "broker": fields.Nested(BrokerSchema, load_default=None),
    }
    for name, make in registered_sections().items():
        attrs[name] = make()

    def cross_checks(self: Schema, data: dict[str, Any], **_: Any) -> None:
        _soc_monitor_outlasts_refresh(data)

    attrs["cross_checks"] = validates_schema(cross_checks)
    return type("SiteFileSchema", (Schema,), attrs)


@dataclass
class SiteConfig:
    """A validated site file. `sections` holds every registered section by name (a section
    that is absent holds its schema's default, usually None)."""

    site: str
    broker: BrokerSettings
    path: str = "<memory>"
    sections: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> Any:
        return self.sections.get(name)

    # The sections of the base stack, by name, for readability at the call sites.
    @property
    def simulator(self) -> Any:
        return self.sections.get("simulator")

    @property
    def devices(self) -> list[Any]:
        return self.sections.get("devices") or []

    @property
    def controller(self) -> Any:
        return self.sections.get("controller")

    @property
    def bridge(self) -> Any:
        return self.sections.get("bridge")


def parse_site(data: dict[str, Any], path: str = "<memory>") -> SiteConfig:
    """Validate an already-parsed site document."""
    try:
        loaded = site_file_schema()().load(data)
    except ValidationError as exc:
        raise ConfigError(path, list(flatten_messages(exc.messages))) from None
    return SiteConfig(
        site=loaded["site"]["id"],
        broker=loaded["broker"] or BrokerSettings(),
        path=path,
        sections={k: v for k, v in loaded.items() if k not in CORE_SECTIONS},
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
