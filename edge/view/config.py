"""`[view]`: the live web page (edge/view). See edge/view/README.md."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from edge.view.auth import ROLES, check_hash_format


@dataclass(frozen=True)
class ViewTls:
    cert_file: str
    key_file: str


@dataclass(frozen=True)
class ViewUser:
    name: str
    role: str  # "viewer" | "operator"
    password_hash: str


@dataclass(frozen=True)
class ViewConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    tls: ViewTls | None = None
    users: tuple[ViewUser, ...] = ()
    # with no users, on loopback only: what an anonymous visitor may do ("none": nothing)
    anonymous: str = "operator"
    session_s: int = 8 * 3600
    login_failures: int = 5  # wrong passwords per client address and per user name ...
    login_window_s: int = 60  # ... within this window; then 429 until the window has passed
    push_s: float = 0.2  # changes are coalesced and pushed at most this often
    stale_s: float = 20.0  # data of a device without a known refresh is stale after this
    events: int = 50  # the last events the page shows
    command_timeout_s: float = 5.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ViewTlsSchema(Schema):
    cert_file = fields.String(required=True)
    key_file = fields.String(required=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> ViewTls:
        return ViewTls(**data)


class ViewUserSchema(Schema):
    name = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.@-]{1,64}$"))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    password_hash = fields.String(required=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> ViewUser:
        problem = check_hash_format(data["password_hash"])
        if problem:
            raise ValidationError(problem, "password_hash")
        return ViewUser(**data)


class ViewSchema(Schema):
    host = fields.String(load_default=ViewConfig.host)
    port = fields.Integer(load_default=ViewConfig.port, validate=validate.Range(0, 65535))
    tls = fields.Nested(ViewTlsSchema, load_default=None)
    users = fields.List(fields.Nested(ViewUserSchema), load_default=list)
    anonymous = fields.String(
        load_default=ViewConfig.anonymous, validate=validate.OneOf(("operator", "viewer", "none"))
    )
    session_s = fields.Integer(load_default=ViewConfig.session_s, validate=validate.Range(60))
    login_failures = fields.Integer(load_default=5, validate=validate.Range(1, 1000))
    login_window_s = fields.Integer(load_default=60, validate=validate.Range(1, 86400))
    push_s = fields.Float(load_default=ViewConfig.push_s, validate=validate.Range(0.05, 5))
    stale_s = fields.Float(load_default=ViewConfig.stale_s, validate=validate.Range(1, 86400))
    events = fields.Integer(load_default=ViewConfig.events, validate=validate.Range(1, 1000))
    command_timeout_s = fields.Float(load_default=5.0, validate=validate.Range(0.5, 60))

    @validates_schema
    def _exposure(self, data: dict[str, Any], **_: Any) -> None:
        if is_loopback(data["host"]):
            return
        if data.get("tls") is None:
            raise ValidationError(
                f"required when host is not loopback ({data['host']!r}): the page carries "
                "passwords and commands",
                "tls",
            )
        if not data.get("users"):
            raise ValidationError(
                f"required when host is not loopback ({data['host']!r}): give at least one "
                "[[view.users]] (bess-edge view-password makes a password_hash)",
                "users",
            )

    @validates_schema
    def _unique(self, data: dict[str, Any], **_: Any) -> None:
        names = [u.name for u in data.get("users") or []]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValidationError(f"user names must be unique; repeated: {dupes}", "users")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> ViewConfig:
        data["users"] = tuple(data["users"])
        return ViewConfig(**data)


def section() -> fields.Field:
    """The site file's `[view]` section, registered under `bess_edge.config`. Absent, the
    page still runs on http://127.0.0.1:8080 (as part of `run` and `demo`)."""
    return fields.Nested(ViewSchema, load_default=None)
