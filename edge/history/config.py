"""`[history]`: the recorder's SQLite database on the gateway. See edge/history/README.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

DAY_S = 86400


@dataclass(frozen=True)
class HistoryConfig:
    path: str = "history.sqlite"
    raw_keep_s: int = DAY_S  # 1 s samples are kept this long, then folded into 1 min rows
    minute_keep_s: int = 30 * DAY_S  # 1 min rows are kept this long
    events_keep_s: int = 30 * DAY_S  # events and state changes
    max_bytes: int = 512 * 1024 * 1024  # database file (plus its WAL) stays under this
    flush_s: float = 1.0  # one transaction per flush
    compact_s: float = 60.0  # how often downsampling and retention run
    record: tuple[str, ...] = ("*",)  # series keys to record (fnmatch patterns) ...
    skip: tuple[str, ...] = ("*_SF",)  # ... except these


class HistorySchema(Schema):
    path = fields.String(load_default=HistoryConfig.path, validate=validate.Length(min=1))
    raw_keep_s = fields.Integer(
        load_default=HistoryConfig.raw_keep_s, validate=validate.Range(60, 366 * DAY_S)
    )
    minute_keep_s = fields.Integer(
        load_default=HistoryConfig.minute_keep_s, validate=validate.Range(60, 10 * 366 * DAY_S)
    )
    events_keep_s = fields.Integer(
        load_default=HistoryConfig.events_keep_s, validate=validate.Range(60, 10 * 366 * DAY_S)
    )
    max_bytes = fields.Integer(
        load_default=HistoryConfig.max_bytes, validate=validate.Range(min=1024 * 1024)
    )
    flush_s = fields.Float(load_default=HistoryConfig.flush_s, validate=validate.Range(0.05, 60))
    compact_s = fields.Float(
        load_default=HistoryConfig.compact_s, validate=validate.Range(1, 86400)
    )
    record = fields.List(fields.String(), load_default=list(HistoryConfig.record))
    skip = fields.List(fields.String(), load_default=list(HistoryConfig.skip))

    @validates_schema
    def _tiers(self, data: dict[str, Any], **_: Any) -> None:
        if data["minute_keep_s"] < data["raw_keep_s"]:
            raise ValidationError(
                f"must be at least raw_keep_s ({data['raw_keep_s']} s): old 1 s samples are "
                "folded into 1 min rows, which must outlive them",
                "minute_keep_s",
            )

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> HistoryConfig:
        data["record"] = tuple(data["record"])
        data["skip"] = tuple(data["skip"])
        return HistoryConfig(**data)


def section() -> fields.Field:
    """The site file's `[history]` section, registered under `bess_edge.config`."""
    return fields.Nested(HistorySchema, load_default=None)


def database_path(site: Any) -> Path | None:
    """The site's [history] database (`site` is a SiteConfig); a relative path is relative
    to the site file's folder, so a site file and its history travel together."""
    cfg: HistoryConfig | None = site.section("history")
    if cfg is None:
        return None
    p = Path(cfg.path)
    return p if p.is_absolute() or str(site.path).startswith("<") else Path(site.path).parent / p
