"""`[bridge]`: the IEEE 2030.5 bridge (edge/bridge). See edge/bridge/README.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates,
    validates_schema,
)

from edge.mqtt.topics import check_device_name

DEFAULT_CIPHERS = ("ECDHE-ECDSA-AES128-CCM8",)
# resources that carry a pollRate (lists and the documents a device polls) or a postRate
POLL_RESOURCES = ("DeviceCapability", "EndDeviceList", "FunctionSetAssignmentsList",
                  "DERProgramList", "DERList", "MirrorUsagePointList", "Registration")  # fmt: skip
POST_RESOURCES = ("MirrorUsagePoint", "EndDevice")


@dataclass(frozen=True)
class BridgeTls:
    cert_file: str
    key_file: str
    ca_file: str
    ciphers: tuple[str, ...] = DEFAULT_CIPHERS


@dataclass(frozen=True)
class BridgeProxy:
    """Plain HTTP behind a trusted TLS-terminating proxy that forwards the client certificate."""

    cert_header: str = "X-Forwarded-Client-Cert"
    allowed_peers: tuple[str, ...] = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class BridgeDevice:
    name: str
    lfdi: str
    sfdi: int
    pin: int | None = None
    legacy_xml: bool | None = None  # None: the bridge's setting


@dataclass(frozen=True)
class BridgeAggregator:
    """A certificate that manages several EndDevices (CSIP-AUS aggregator client)."""

    name: str
    lfdi: str


@dataclass(frozen=True)
class BridgeConfig:
    host: str = "0.0.0.0"
    port: int = 8443
    tls: BridgeTls | None = None
    proxy: BridgeProxy | None = None
    allow_registration: bool = False
    allow_reregistration: bool = False
    legacy_xml: bool = False
    timezone: str = "UTC"
    poll_rate_s: int = 60
    refresh_s: int = 60
    offline_after_s: int = 180
    primacy: int = 1
    wchamax_duration_s: int = 900
    max_body_bytes: int = 65536
    default_control: dict[str, Any] = field(default_factory=dict)
    devices: tuple[BridgeDevice, ...] = ()
    aggregators: tuple[BridgeAggregator, ...] = ()
    poll_rates: dict[str, int] = field(default_factory=dict)  # resource name -> pollRate (s)
    post_rates: dict[str, int] = field(default_factory=dict)  # resource name -> postRate (s)
    pen: int = 0  # IANA Private Enterprise Number: the last 8 digits of server mRIDs
    csipaus_ns: str = "https://csipaus.org/ns/v1.3"  # CSIP-AUS namespace of what we emit
    public_url: str | None = None  # scheme://host[:port] clients reach us at; None: listen address

    @property
    def base_url(self) -> str:
        """Where clients reach the server: the prefix of every URI that must be absolute."""
        if self.public_url is not None:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"


class BridgeTlsSchema(Schema):
    cert_file = fields.String(required=True)
    key_file = fields.String(required=True)
    ca_file = fields.String(required=True, metadata={"doc": "CA that signs device certificates"})
    ciphers = fields.List(
        fields.String(validate=validate.Length(min=1)),
        load_default=list(DEFAULT_CIPHERS),
        validate=validate.Length(min=1),
    )

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> BridgeTls:
        return BridgeTls(
            data["cert_file"], data["key_file"], data["ca_file"], tuple(data["ciphers"])
        )


class BridgeProxySchema(Schema):
    cert_header = fields.String(load_default="X-Forwarded-Client-Cert")
    allowed_peers = fields.List(fields.String(), load_default=["127.0.0.1", "::1"])

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> BridgeProxy:
        return BridgeProxy(data["cert_header"], tuple(data["allowed_peers"]))


class BridgeDeviceSchema(Schema):
    name = fields.String(required=True)
    lfdi = fields.String(required=True)
    sfdi = fields.Integer(required=True, strict=True)
    pin = fields.Integer(load_default=None, strict=True, validate=validate.Range(0, 99999999))
    legacy_xml = fields.Boolean(load_default=None)

    @validates("name")
    def _name(self, value: str, **_: Any) -> None:
        try:
            check_device_name(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    @validates_schema
    def _ids(self, data: dict[str, Any], **_: Any) -> None:
        from edge.bridge.identity import normalise_lfdi, sfdi_from_lfdi

        try:
            lfdi = normalise_lfdi(data["lfdi"])
        except ValueError as exc:
            raise ValidationError(str(exc), "lfdi") from None
        if data["sfdi"] != sfdi_from_lfdi(lfdi):
            raise ValidationError(
                f"{data['sfdi']} is not the SFDI of LFDI {lfdi} ({sfdi_from_lfdi(lfdi)})", "sfdi"
            )

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> BridgeDevice:
        return BridgeDevice(
            data["name"],
            data["lfdi"].strip().lower(),
            data["sfdi"],
            data["pin"],
            data["legacy_xml"],
        )


class BridgeAggregatorSchema(Schema):
    name = fields.String(required=True)
    lfdi = fields.String(required=True)

    @validates("lfdi")
    def _lfdi(self, value: str, **_: Any) -> None:
        from edge.bridge.identity import normalise_lfdi

        try:
            normalise_lfdi(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> BridgeAggregator:
        return BridgeAggregator(data["name"], data["lfdi"].strip().lower())


class BridgeSchema(Schema):
    host = fields.String(load_default="0.0.0.0")
    port = fields.Integer(load_default=8443, validate=validate.Range(0, 65535))
    tls = fields.Nested(BridgeTlsSchema, load_default=None)
    proxy = fields.Nested(BridgeProxySchema, load_default=None)
    allow_registration = fields.Boolean(load_default=False)
    allow_reregistration = fields.Boolean(load_default=False)
    legacy_xml = fields.Boolean(load_default=False)
    timezone = fields.String(load_default="UTC")
    poll_rate_s = fields.Integer(load_default=60, validate=validate.Range(1, 86400))
    refresh_s = fields.Integer(load_default=60, validate=validate.Range(1, 86400))
    offline_after_s = fields.Integer(load_default=180, validate=validate.Range(1, 86400))
    primacy = fields.Integer(load_default=1, validate=validate.Range(0, 255))
    wchamax_duration_s = fields.Integer(load_default=900, validate=validate.Range(1, 86400 * 7))
    max_body_bytes = fields.Integer(load_default=65536, validate=validate.Range(1024, 1 << 22))
    default_control = fields.Dict(keys=fields.String(), load_default=dict)
    devices = fields.List(fields.Nested(BridgeDeviceSchema), load_default=list)
    aggregators = fields.List(fields.Nested(BridgeAggregatorSchema), load_default=list)
    poll_rates = fields.Dict(
        keys=fields.String(validate=validate.OneOf(POLL_RESOURCES)),
        values=fields.Integer(strict=True, validate=validate.Range(1, 86400 * 7)),
        load_default=dict,
    )
    post_rates = fields.Dict(
        keys=fields.String(validate=validate.OneOf(POST_RESOURCES)),
        values=fields.Integer(strict=True, validate=validate.Range(1, 86400 * 7)),
        load_default=dict,
    )
    pen = fields.Integer(strict=True, load_default=0, validate=validate.Range(0, 99999999))
    csipaus_ns = fields.String(
        load_default="https://csipaus.org/ns/v1.3",
        validate=validate.OneOf(["https://csipaus.org/ns/v1.3", "https://csipaus.org/ns"]),
    )

    public_url = fields.String(load_default=None)

    @validates("timezone")
    def _tz(self, value: str, **_: Any) -> None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f"unknown time zone {value!r} (use an IANA name)") from None

    @validates("default_control")
    def _default(self, value: dict[str, Any], **_: Any) -> None:
        from edge.bridge.controls import ControlError, parse_default

        try:
            parse_default(value)
        except ControlError as exc:
            raise ValidationError(exc.message) from None

    @validates_schema
    def _transport(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("tls") is None and data.get("proxy") is None:
            raise ValidationError(
                "give [bridge.tls] (HTTPS, client certificates) or, only behind a trusted "
                "TLS-terminating proxy, [bridge.proxy]; plain HTTP is never the default",
                "tls",
            )
        if data.get("tls") is not None and data.get("proxy") is not None:
            raise ValidationError("give either [bridge.tls] or [bridge.proxy], not both", "proxy")
        if data.get("public_url") is not None:
            data["public_url"] = check_public_url(data["public_url"], data.get("proxy") is not None)
        devs = data.get("devices") or []
        for attr_ in ("name", "lfdi"):
            vals = [getattr(d, attr_) for d in devs]
            dupes = sorted({v for v in vals if vals.count(v) > 1})
            if dupes:
                raise ValidationError(
                    f"device {attr_}s must be unique; repeated: {dupes}", "devices"
                )

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> BridgeConfig:
        data["devices"] = tuple(data["devices"])
        data["aggregators"] = tuple(data["aggregators"])
        return BridgeConfig(**data)


def check_public_url(value: str, proxied: bool) -> str:
    """`public_url` without a trailing slash; refused unless https://host[:port] (http only
    behind the trusted proxy, which terminates TLS)."""
    try:
        u = urlsplit(value.strip())
        port = u.port  # raises on a bad port
    except ValueError as exc:
        raise ValidationError(f"not a URL: {exc}", "public_url") from None
    schemes = ("https", "http") if proxied else ("https",)
    if u.scheme not in schemes:
        raise ValidationError(
            f"scheme must be {' or '.join(schemes)}, not {u.scheme or 'missing'!r}"
            + ("" if proxied else " (http only with [bridge.proxy])"),
            "public_url",
        )
    if not u.hostname:
        raise ValidationError("needs a host, e.g. https://gateway.example:8443", "public_url")
    if u.path not in ("", "/") or u.query or u.fragment or u.username or u.password:
        raise ValidationError(
            "only scheme://host[:port]; no path, query, fragment or user", "public_url"
        )
    del port
    return f"{u.scheme}://{u.netloc}"


def section() -> fields.Field:
    """The site file's `[bridge]` section, registered under `bess_edge.config`."""
    return fields.Nested(BridgeSchema, load_default=None)
