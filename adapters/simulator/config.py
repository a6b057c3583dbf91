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

from edge.families import sim_profiles
from edge.mqtt.topics import NAME_RE, RESERVED_NAMES

KINDS = ("battery", "inverter", "meter", "pv")
PROFILES = {
    "battery": ("sunspec",),
    "inverter": sim_profiles(),
    "meter": ("sunspec",),
    "pv": ("sunspec",),
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
    "meter": {"load_w", "load_profile", "load_noise_w", "load_noise_tau_s", "inverter"},
    "pv": {
        "rating_w",
        "irradiance_profile",
        "sunrise_s",
        "sunset_s",
        "peak_irradiance",
        "cloud_per_h",
        "cloud_depth",
        "cloud_s",
    },
}
DAY_S = 86_400


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
    load_noise_w: float = 0.0
    load_noise_tau_s: float = 60.0
    inverter: str | None = None
    # pv (rating_w above)
    irradiance_profile: list[tuple[float, float]] | None = None
    sunrise_s: float = 6 * 3600.0
    sunset_s: float = 18 * 3600.0
    peak_irradiance: float = 1000.0
    cloud_per_h: float = 0.0
    cloud_depth: float = 0.7
    cloud_s: float = 120.0


@dataclass
class SimulatorConfig:
    host: str = "127.0.0.1"
    time_scale: float = 1.0
    step_s: float = 0.05
    start_s: float = 0.0
    seed: int = 0
    devices: list[SimDeviceConfig] = field(default_factory=list)

    def device(self, name: str) -> SimDeviceConfig:
        for d in self.devices:
            if d.name == name:
                return d
        raise KeyError(name)


def _positive(name: str) -> validate.Range:
    return validate.Range(min=0, min_inclusive=False, error=f"{name} must be > 0")


class _LoadPoint(fields.Field):
    """A `[seconds, W]` pair of a load profile (or `[seconds, W/m2]` of irradiance)."""

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
    load_noise_w = fields.Float(validate=validate.Range(min=0))
    load_noise_tau_s = fields.Float(validate=_positive("load_noise_tau_s"))
    inverter = fields.String()
    irradiance_profile = fields.List(_LoadPoint(), validate=validate.Length(min=1))
    sunrise_s = fields.Float(validate=validate.Range(0, DAY_S))
    sunset_s = fields.Float(validate=validate.Range(0, DAY_S))
    peak_irradiance = fields.Float(validate=validate.Range(0, 1500))
    cloud_per_h = fields.Float(validate=validate.Range(0, 3600))
    cloud_depth = fields.Float(validate=validate.Range(0, 1))
    cloud_s = fields.Float(validate=_positive("cloud_s"))

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
        for key in ("load_profile", "irradiance_profile"):
            prof = data.get(key)
            if prof and any(b[0] <= a[0] for a, b in itertools.pairwise(prof)):
                errors.setdefault(key, []).append("seconds must increase")
        irr = data.get("irradiance_profile") or []
        if any(t > DAY_S for t, _ in irr) or any(w < 0 for _, w in irr):
            errors.setdefault("irradiance_profile", []).append(
                "each point is [seconds after midnight 0..86400, W/m2 >= 0]"
            )
        if data.get("sunrise_s", 21600.0) >= data.get("sunset_s", 64800.0):
            errors["sunrise_s"] = ["must be before sunset_s"]
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
    start_s = fields.Float(
        load_default=0.0,
        validate=validate.Range(0, DAY_S),
        metadata={"doc": "time of day (seconds after midnight) when the simulation starts"},
    )
    seed = fields.Integer(load_default=0, metadata={"doc": "seed of load noise and clouds"})
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
