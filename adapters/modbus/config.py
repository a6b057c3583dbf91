"""`[[devices]]`: the Modbus devices the adapters serve (one table per device).

Each device gets its own Modbus client and its own MQTT connection (so its own will).
Defaults keep failure detection within `offline_budget_s` (1 s): a short Modbus timeout and
no retry chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from edge.mqtt.topics import NAME_RE, RESERVED_NAMES

KINDS = ("sunspec", "pointmap")
TRANSPORTS = ("tcp", "rtu")


@dataclass(frozen=True)
class SerialConfig:
    port: str
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8


@dataclass(frozen=True)
class PollGroupConfig:
    """A poll group: `period_s` 0 means once after every (re)connect; `points` are key
    patterns (`802/SoC`, `802/*`)."""

    name: str
    period_s: float
    points: tuple[str, ...]


@dataclass
class DeviceConfig:
    name: str
    kind: str
    transport: str = "tcp"
    host: str = "127.0.0.1"
    port: int = 502
    serial: SerialConfig | None = None
    unit_id: int = 1
    pointmap: str | None = None
    profile: str | None = None
    base_addresses: tuple[int, ...] = (40000, 0, 50000)
    timeout_s: float = 0.25
    retries: int = 0
    offline_budget_s: float = 1.0
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 2.0
    poll_s: float = 1.0
    refresh_s: float = 10.0
    deadband: float = 0.0
    deadbands: dict[str, float] = field(default_factory=dict)
    poll_groups: tuple[PollGroupConfig, ...] | None = None
    max_gap: int = 16
    max_regs: int = 125
    write_attempts: int = 2
    write_wait_s: float = 0.05
    write_budget_s: float = 2.0
    refused_retry_min_s: float = 60.0
    refused_retry_max_s: float = 3600.0
    self_clearing: tuple[str, ...] = ("802/AlmRst",)
    readback_tolerance: dict[str, float] = field(default_factory=dict)
    limits: dict[str, tuple[float, float]] = field(default_factory=dict)


class SerialSchema(Schema):
    port = fields.String(required=True, validate=validate.Length(min=1))
    baudrate = fields.Integer(
        load_default=9600,
        validate=validate.OneOf((1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)),
    )
    parity = fields.String(load_default="N", validate=validate.OneOf(("N", "E", "O")))
    stopbits = fields.Integer(load_default=1, validate=validate.OneOf((1, 2)))
    bytesize = fields.Integer(load_default=8, validate=validate.OneOf((7, 8)))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> SerialConfig:
        return SerialConfig(**data)


class PollGroupSchema(Schema):
    name = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9_-]{1,32}$"))
    period_s = fields.Float(
        required=True,
        validate=validate.Range(min=0, max=86400),
        metadata={"doc": "0: once after start and after every reconnect (nameplate)"},
    )
    points = fields.List(
        fields.String(validate=validate.Length(min=1)),
        required=True,
        validate=validate.Length(min=1),
        metadata={"doc": "patterns on the topic suffix, e.g. '802/*', '160/module/*/DCA'"},
    )

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> PollGroupConfig:
        return PollGroupConfig(data["name"], data["period_s"], tuple(data["points"]))


def _pos(name: str, hi: float = 3600.0) -> validate.Range:
    return validate.Range(
        min=0, max=hi, min_inclusive=False, error=f"{name} must be > 0 and <= {hi}"
    )


class DeviceSchema(Schema):
    name = fields.String(
        required=True,
        validate=validate.Regexp(NAME_RE, error="must match {regex} (lower-case, digits, _ or -)"),
    )
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    transport = fields.String(load_default="tcp", validate=validate.OneOf(TRANSPORTS))
    host = fields.String(load_default="127.0.0.1", validate=validate.Length(min=1))
    port = fields.Integer(load_default=502, validate=validate.Range(1, 65535))
    serial = fields.Nested(SerialSchema, load_default=None)
    unit_id = fields.Integer(load_default=1, validate=validate.Range(0, 247))
    pointmap = fields.String(
        load_default=None,
        metadata={"doc": "CSV path (relative to the site file) or a built-in profile: res125"},
    )
    profile = fields.String(
        load_default=None,
        validate=validate.Regexp(NAME_RE, error="must match {regex}"),
        metadata={"doc": "the {model} topic level of a point-map device; default: CSV name"},
    )
    base_addresses = fields.List(
        fields.Integer(validate=validate.Range(0, 65535)),
        load_default=lambda: [40000, 0, 50000],
        validate=validate.Length(min=1),
    )
    timeout_s = fields.Float(load_default=0.25, validate=_pos("timeout_s", 60))
    retries = fields.Integer(load_default=0, validate=validate.Range(0, 5))
    offline_budget_s = fields.Float(load_default=1.0, validate=_pos("offline_budget_s", 600))
    reconnect_min_s = fields.Float(load_default=0.1, validate=_pos("reconnect_min_s", 600))
    reconnect_max_s = fields.Float(load_default=2.0, validate=_pos("reconnect_max_s", 3600))
    poll_s = fields.Float(load_default=1.0, validate=validate.Range(min=0.01, max=86400))
    refresh_s = fields.Float(load_default=10.0, validate=validate.Range(min=1, max=86400))
    deadband = fields.Float(load_default=0.0, validate=validate.Range(min=0))
    deadbands = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1)),
        values=fields.Float(validate=validate.Range(min=0)),
        load_default=dict,
    )
    poll_groups = fields.List(fields.Nested(PollGroupSchema), load_default=None)
    max_gap = fields.Integer(load_default=16, validate=validate.Range(0, 124))
    max_regs = fields.Integer(load_default=125, validate=validate.Range(2, 125))
    write_attempts = fields.Integer(load_default=2, validate=validate.Range(1, 10))
    write_wait_s = fields.Float(load_default=0.05, validate=validate.Range(0, 10))
    write_budget_s = fields.Float(load_default=2.0, validate=_pos("write_budget_s", 30))
    refused_retry_min_s = fields.Float(
        load_default=60.0,
        validate=_pos("refused_retry_min_s", 86400),
        metadata={"doc": "first retry of a point the device refuses; doubles up to the max"},
    )
    refused_retry_max_s = fields.Float(
        load_default=3600.0, validate=_pos("refused_retry_max_s", 86400)
    )

    self_clearing = fields.List(
        fields.String(validate=validate.Length(min=1)),
        load_default=lambda: ["802/AlmRst"],
        metadata={"doc": "points the device resets to 0 by itself (read-back may be 0)"},
    )
    readback_tolerance = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1)),
        values=fields.Float(validate=validate.Range(min=0)),
        load_default=dict,
        metadata={"doc": "pattern -> how far (engineering units) a read-back may drift"},
    )

    limits = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1)),
        values=fields.List(fields.Float(allow_nan=False), validate=validate.Length(equal=2)),
        load_default=dict,
        metadata={
            "doc": "pattern -> [min, max] in engineering units; writes outside: out_of_range"
        },
    )

    @validates_schema
    def check(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        if data.get("name") in RESERVED_NAMES:
            errors["name"] = [f"{data['name']!r} is reserved ({', '.join(sorted(RESERVED_NAMES))})"]
        kind = data.get("kind")
        if kind == "pointmap" and not data.get("pointmap"):
            errors["pointmap"] = ["required for kind = 'pointmap' (a CSV path or 'res125')"]
        if kind == "sunspec":
            for key in ("pointmap", "profile"):
                if data.get(key) is not None:
                    errors[key] = ["only for kind = 'pointmap'"]
        transport = data.get("transport", "tcp")
        if transport == "rtu" and data.get("serial") is None:
            errors["serial"] = ["required for transport = 'rtu' (port, baudrate, parity, ...)"]
        if transport == "tcp" and data.get("serial") is not None:
            errors["serial"] = ["only for transport = 'rtu'"]
        timeout, retries = data.get("timeout_s", 0.25), data.get("retries", 0)
        budget = data.get("offline_budget_s", 1.0)
        if timeout * (retries + 1) >= budget:
            errors["timeout_s"] = [
                f"timeout_s x (retries + 1) = {timeout * (retries + 1):g} s must be below"
                f" offline_budget_s ({budget:g} s), or a dead device is detected too late"
            ]
        if data.get("reconnect_min_s", 0.1) > data.get("reconnect_max_s", 2.0):
            errors["reconnect_min_s"] = ["must not exceed reconnect_max_s"]
        if data.get("refused_retry_min_s", 60.0) > data.get("refused_retry_max_s", 3600.0):
            errors["refused_retry_min_s"] = ["must not exceed refused_retry_max_s"]
        groups = data.get("poll_groups") or []
        names = [g.name for g in groups]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            errors["poll_groups"] = [f"group names must be unique; repeated: {', '.join(dupes)}"]
        for pattern, pair in (data.get("limits") or {}).items():
            if len(pair) == 2 and pair[0] > pair[1]:
                errors.setdefault("limits", []).append(
                    f"{pattern}: min {pair[0]:g} > max {pair[1]:g}"
                )
        if errors:
            raise ValidationError(errors)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> DeviceConfig:
        data["base_addresses"] = tuple(data["base_addresses"])
        data["self_clearing"] = tuple(data["self_clearing"])
        data["limits"] = {k: (float(v[0]), float(v[1])) for k, v in data["limits"].items()}
        if data["poll_groups"] is not None:
            data["poll_groups"] = tuple(data["poll_groups"])
        return DeviceConfig(**data)


def _unique_names(value: list[Any]) -> None:
    names = [getattr(d, "name", None) for d in value]
    dupes = sorted({n for n in names if n is not None and names.count(n) > 1})
    if dupes:
        raise ValidationError(f"device names must be unique; repeated: {', '.join(dupes)}")


def section() -> fields.Field:
    """The site file's `[[devices]]` list, registered under `bess_edge.config`."""
    return fields.List(fields.Nested(DeviceSchema), load_default=list, validate=_unique_names)
