"""`[dnp3]`: the MESA-ESS DNP3 outstation (edge/dnp3). Off unless `enabled = true`.

See edge/dnp3/README.md for every option. Addresses follow IEEE 1815: an outstation address
is 0-65519 (65520-65535 are reserved for broadcast); the master address is checked on every
frame, so it must be a real one (1-65519).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from edge.dnp3.pointmap import PointMap, PointMapError, load_pointmap

FALLBACKS = ("hold", "stop", "none")
DEFAULT_POINTMAP = "points.toml"


@dataclass(frozen=True)
class Dnp3Config:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 20000
    outstation_address: int = 10
    master_address: int = 1
    unsolicited: bool = False
    event_buffer: int = 200
    select_timeout_s: float = 10.0
    command_timeout_s: float = 4.0
    master_timeout_s: float = 60.0
    fallback: str = "hold"
    remote_control: bool = True
    soc_bands: tuple[float, ...] = (10.0, 20.0, 80.0, 90.0)
    state_publish_s: float = 5.0
    pointmap_path: str = "<bundled points.toml>"
    pointmap: PointMap | None = None

    @property
    def points(self) -> PointMap:
        return self.pointmap if self.pointmap is not None else bundled_pointmap()


@cache
def bundled_pointmap() -> PointMap:
    """The bundled map, parsed once (it is read on every site update)."""
    text = resources.files("edge.dnp3").joinpath(DEFAULT_POINTMAP).read_text("utf-8")
    return load_pointmap(text, "edge/dnp3/points.toml")


class Dnp3Schema(Schema):
    enabled = fields.Boolean(load_default=False)
    host = fields.String(load_default="127.0.0.1", validate=validate.Length(min=1))
    port = fields.Integer(load_default=20000, validate=validate.Range(0, 65535))
    outstation_address = fields.Integer(load_default=10, validate=validate.Range(0, 65519))
    master_address = fields.Integer(load_default=1, validate=validate.Range(1, 65519))
    unsolicited = fields.Boolean(load_default=False)
    event_buffer = fields.Integer(load_default=200, validate=validate.Range(1, 10000))
    select_timeout_s = fields.Float(load_default=10.0, validate=validate.Range(0.1, 60))
    command_timeout_s = fields.Float(load_default=4.0, validate=validate.Range(0.1, 30))
    master_timeout_s = fields.Float(load_default=60.0, validate=validate.Range(0.5, 86400))
    fallback = fields.String(load_default="hold", validate=validate.OneOf(FALLBACKS))
    remote_control = fields.Boolean(load_default=True)
    soc_bands = fields.List(
        fields.Float(validate=validate.Range(0, 100)),
        load_default=[10.0, 20.0, 80.0, 90.0],
        validate=validate.Length(max=16),
    )
    state_publish_s = fields.Float(load_default=5.0, validate=validate.Range(0.1, 3600))
    pointmap = fields.String(load_default=None, validate=validate.Length(min=1))

    @validates_schema
    def _checks(self, data: dict[str, Any], **_: Any) -> None:
        bands = data.get("soc_bands") or []
        if list(bands) != sorted(set(bands)):
            raise ValidationError("must be strictly increasing", "soc_bands")
        if data.get("outstation_address") == data.get("master_address"):
            raise ValidationError("must differ from outstation_address", "master_address")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Dnp3Config:
        path = data.pop("pointmap", None)
        pm: PointMap | None = None
        if path is not None:
            try:
                pm = load_pointmap(Path(path).read_text("utf-8"), path)
            except OSError as exc:
                raise ValidationError(f"cannot read {path}: {exc}", "pointmap") from None
            except PointMapError as exc:
                raise ValidationError(str(exc), "pointmap") from None
        data["soc_bands"] = tuple(data["soc_bands"])
        return Dnp3Config(**data, pointmap_path=path or "<bundled points.toml>", pointmap=pm)


def section() -> fields.Field:
    """Entry point `bess_edge.config: dnp3`."""
    return fields.Nested(Dnp3Schema, load_default=None)
