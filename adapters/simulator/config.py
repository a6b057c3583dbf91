"""`[simulator]`: the SunSpec site simulator (adapters/simulator).

One table for the whole simulator plus one `[[simulator.devices]]` table per simulated device.
Physics parameters are per device and checked against the device kind, so a battery option
on a meter is an error naming the key rather than a silently ignored setting.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from edge.mqtt.topics import NAME_RE, RESERVED_NAMES

KINDS = ("battery", "inverter", "meter")
PROFILES = {
    "battery": ("sunspec",),
    "inverter": ("sunspec", "legacy", "res125"),
    "meter": ("sunspec",),
}
# Keys that only make sense for one kind (everything else is common).
KIND_KEYS = {
    "battery": {
        "capacity_wh",
        "initial_soc",
        "voltage",
        "max_charge_a",
        "max_discharge_a",
        "connect_delay_s",
        "taper_high_soc",
        "taper_low_soc",
    },
    "inverter": {"rating_w", "ramp_w_per_s", "battery", "heartbeat_initial"},
    "meter": {"load_w", "load_profile", "inverter"},
}


@dataclass
class SimDeviceConfig:
    """One simulated device. Units: W, Wh, V, A, %, seconds of simulated time."""

    name: str
    kind: str
    profile: str = "sunspec"
    port: int = 0
    unit_id: int = 1
    # battery
    capacity_wh: float = 100_000.0
    initial_soc: float = 50.0
    voltage: float = 800.0
    max_charge_a: float = 125.0
    max_discharge_a: float = 125.0
    connect_delay_s: float = 2.0
    taper_high_soc: float = 90.0
    taper_low_soc: float = 10.0
    # inverter
    rating_w: float = 100_000.0
    ramp_w_per_s: float = 50_000.0
    battery: str | None = None
    heartbeat_initial: int = 931
    # meter
    load_w: float = 20_000.0
    load_profile: list[tuple[float, float]] | None = None
    inverter: str | None = None


@dataclass
class SimulatorConfig:
    host: str = "127.0.0.1"
    time_scale: float = 1.0
    step_s: float = 0.05
    devices: list[SimDeviceConfig] = field(default_factory=list)

    def device(self, name: str) -> SimDeviceConfig:
        for d in self.devices:
            if d.name == name:
                return d
        raise KeyError(name)


def _positive(name: str) -> validate.Range:
    return validate.Range(min=0, min_inclusive=False, error=f"{name} must be > 0")


class _LoadPoint(fields.Field):
    """A `[seconds, W]` pair of a load profile."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if (
            not isinstance(value, (list, tuple))
            or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        ):
            raise ValidationError("each point must be [seconds, watts] (two numbers)")
        t, w = float(value[0]), float(value[1])
        if t < 0:
            raise ValidationError("seconds must be >= 0")
        return (t, w)


class SimDeviceSchema(Schema):
    name = fields.String(
        required=True,
        validate=validate.Regexp(NAME_RE, error="must match {regex} (lower-case, digits, _ or -)"),
    )
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    profile = fields.String(load_default="sunspec")
    port = fields.Integer(load_default=0, validate=validate.Range(0, 65535))
    unit_id = fields.Integer(load_default=1, validate=validate.Range(1, 247))
    capacity_wh = fields.Float(validate=_positive("capacity_wh"))
    initial_soc = fields.Float(validate=validate.Range(0, 100))
    voltage = fields.Float(validate=_positive("voltage"))
    max_charge_a = fields.Float(validate=validate.Range(min=0))
    max_discharge_a = fields.Float(validate=validate.Range(min=0))
    connect_delay_s = fields.Float(validate=validate.Range(min=0))
    taper_high_soc = fields.Float(validate=validate.Range(0, 100))
    taper_low_soc = fields.Float(validate=validate.Range(0, 100))
    rating_w = fields.Float(validate=_positive("rating_w"))
    ramp_w_per_s = fields.Float(validate=_positive("ramp_w_per_s"))
    battery = fields.String()
    heartbeat_initial = fields.Integer(validate=validate.Range(1, 65535))
    load_w = fields.Float()
    load_profile = fields.List(_LoadPoint(), validate=validate.Length(min=1))
    inverter = fields.String()

    @validates_schema
    def check_kind(self, data: dict[str, Any], **_: Any) -> None:
        kind = data.get("kind")
        if kind not in PROFILES:
            return
        errors: dict[str, list[str]] = {}
        if data.get("name") in RESERVED_NAMES:
            errors["name"] = [f"{data['name']!r} is reserved"]
        profile = data.get("profile", "sunspec")
        if profile not in PROFILES[kind]:
            errors["profile"] = [f"must be one of {', '.join(PROFILES[kind])} for a {kind}"]
        other = set().union(*(keys for k, keys in KIND_KEYS.items() if k != kind))
        for key in sorted(other & set(data) - KIND_KEYS[kind]):
            errors[key] = [f"not a {kind} option"]
        lo, hi = data.get("taper_low_soc", 10.0), data.get("taper_high_soc", 90.0)
        if kind == "battery" and lo >= hi:
            errors["taper_low_soc"] = [f"must be below taper_high_soc ({hi})"]
        if kind == "meter" and "load_w" in data and "load_profile" in data:
            errors["load_profile"] = ["give load_w or load_profile, not both"]
        prof = data.get("load_profile")
        if prof and any(b[0] <= a[0] for a, b in itertools.pairwise(prof)):
            errors.setdefault("load_profile", []).append("seconds must increase")
        if errors:
            raise ValidationError(errors)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> SimDeviceConfig:
        return SimDeviceConfig(**data)


class SimulatorSchema(Schema):
    host = fields.String(load_default="127.0.0.1")
    time_scale = fields.Float(load_default=1.0, validate=validate.Range(0.001, 10_000))
    step_s = fields.Float(
        load_default=0.05,
        validate=validate.Range(0.005, 5.0),
        metadata={"doc": "real seconds between physics steps"},
    )
    devices = fields.List(fields.Nested(SimDeviceSchema), load_default=list)

    @validates_schema
    def check_devices(self, data: dict[str, Any], **_: Any) -> None:
        devs: list[SimDeviceConfig] = data.get("devices", [])
        names = [d.name for d in devs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValidationError(
                f"device names must be unique; repeated: {', '.join(dupes)}", "devices"
            )
        ports = [d.port for d in devs if d.port]
        dports = sorted({p for p in ports if ports.count(p) > 1})
        if dports:
            raise ValidationError(f"ports must be unique; repeated: {dports}", "devices")
        kinds = {d.name: d.kind for d in devs}
        for i, d in enumerate(devs):
            for key, want in (("battery", "battery"), ("inverter", "inverter")):
                ref = getattr(d, key)
                if ref is not None and kinds.get(ref) != want:
                    raise ValidationError(
                        {"devices": {i: {key: [f"no {want} device named {ref!r}"]}}}
                    )

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> SimulatorConfig:
        return SimulatorConfig(**data)


def section() -> fields.Field:
    """The site file's `[simulator]` section, registered under `bess_edge.config`."""
    return fields.Nested(SimulatorSchema, load_default=None)
