"""What the 2030.5 server keeps, and the small vocabulary its function sets share. No I/O.

A leaf module: the function sets (edge/bridge/fs/), the core and the MQTT shell all import it,
and it imports none of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from lxml import etree
from pydantic_xml import BaseXmlModel

from edge.bridge import mapping
from edge.bridge import models as m
from edge.bridge.config import BridgeConfig
from edge.bridge.controls import Limits, Schedule
from edge.bridge.identity import LFDI_RE
from edge.bridge.xmlcodec import render

MAX_PAGE = 255
RESPONSE_HISTORY = 256
RENDER_CACHE = 64
REASON_FORMAT, REASON_VALUES = 0, 1
T = TypeVar("T")


@dataclass
class Reply:
    status: int
    body: bytes = b""
    location: str | None = None

    @property
    def content_type(self) -> str | None:
        return m.CONTENT_TYPE if self.body else None


class HttpError(Exception):
    """A refused request; 400 and 409 carry an Error body with the message."""

    def __init__(self, status: int, message: str = "", reason: int = REASON_VALUES) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


@dataclass
class Device:
    eid: int
    name: str
    lfdi: str
    sfdi: int
    pin: int | None
    registered_at: int
    changed_time: int
    legacy_xml: bool = False
    device_category: str | None = None  # as the device registered it (HexBinary32)
    aggregator: str | None = None  # LFDI of the aggregator certificate that manages it
    docs: dict[str, bytes] = field(default_factory=dict)  # device-posted, served back as sent
    wrtg: float | None = None
    set_max_charge_w: float | None = None
    set_max_w: float | None = None
    settings: m.DERSettingsIn | None = None
    availability_s: int | None = None
    schedule: Schedule = field(default_factory=Schedule)
    responses: list[m.ResponseIn] = field(default_factory=list)
    response_seq: int = 0
    last_seen: float | None = None
    rendered: dict[tuple[Any, ...], bytes] = field(default_factory=dict)
    wchamax: tuple[str, float] | None = None  # (mRID, W) of the last set/124/WChaMax
    defaults: dict[int, dict[str, Any]] = field(default_factory=dict)  # primacy -> set/dderc
    programs: set[int] = field(default_factory=set)  # primacies an operator created
    fsa_of: dict[int, int] = field(default_factory=dict)  # primacy -> its FSA (default 1)
    dderc_seq: int = 0  # bumped by set/dderc, so a replaced default gets a new mRID

    @property
    def base(self) -> str:
        return f"/edev/{self.eid}"

    def wmax(self) -> float | None:
        return mapping.wmax(self.settings, self.wrtg)

    def limits(self) -> Limits:
        return Limits(max_w=self.set_max_w, max_charge_w=self.set_max_charge_w)

    def derived(self) -> dict[str, Any]:
        """Points computed from several resources: WMax, and DCWh from availability and WMax."""
        return mapping.derived_points(self.wmax(), self.availability_s)


@dataclass
class Subscription:
    sid: int
    owner: int  # eid
    resource: str  # subscribedResource (a path of the owner's)
    notification_uri: str
    limit: int
    doc: Any  # the Subscription as served back
    key: Any = None  # what the resource looked like when last notified
    cert: str = ""  # LFDI of the certificate that subscribed (an aggregator's, for its devices)


@dataclass(frozen=True)
class Notification:
    """One POST to make: where, what (a Notification document), for which subscription."""

    uri: str
    body: bytes
    subscription: str


@dataclass
class Mup:
    mid: int
    owner: int
    doc: m.MirrorUsagePointOut | None
    mrid: str
    readings: dict[str, str] = field(default_factory=dict)  # MMR mRID -> description
    pow10: dict[str, int] = field(default_factory=dict)  # MMR mRID or description -> multiplier


class Sink(Protocol):
    """What the core reports (the MQTT shell implements it). Calls must not block."""

    def device_added(self, dev: Device) -> None: ...
    def device_removed(self, dev: Device) -> None: ...
    def points(self, dev: Device, values: dict[str, Any]) -> None: ...
    def event(self, dev: Device, body: dict[str, Any]) -> None: ...


class NullSink:
    def device_added(self, dev: Device) -> None:
        pass

    def device_removed(self, dev: Device) -> None:
        pass

    def points(self, dev: Device, values: dict[str, Any]) -> None:
        pass

    def event(self, dev: Device, body: dict[str, Any]) -> None:
        pass


# -- shared helpers ----------------------------------------------------------------------------


def server_mrid(*parts: object) -> str:
    """A stable server mRID (32 hex digits) for a resource the bridge owns."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:32].upper()


def _int_q(query: Mapping[str, str], key: str, default: int) -> int:
    raw = query.get(key, "")
    if raw.strip() == "":  # `?s=&l=` crashed the original (B12): empty means default
        return default
    try:
        v = int(raw)
    except ValueError:
        raise HttpError(400, f"query {key}={raw!r}: expected a non-negative integer") from None
    if v < 0:
        raise HttpError(400, f"query {key}={raw!r}: expected a non-negative integer")
    return v


def page(
    items: list[T], query: Mapping[str, str], when: Callable[[T], int] | None = None
) -> tuple[list[T], int]:
    """Apply 2030.5 list query `s` (start), `a` (after, time), `l` (limit, default 1)."""
    start = _int_q(query, "s", 0)
    after = _int_q(query, "a", 0)
    limit = min(_int_q(query, "l", 1), MAX_PAGE)
    if when is not None and after:
        items = [i for i in items if when(i) >= after]
    return items[start : start + limit], len(items)


def posted_lfdi(raw: str | None, where: str) -> str | None:
    """A posted LFDI, normalised; malformed (not 40 hex digits) is 400, absent is None."""
    if raw is None:
        return None
    lf = raw.strip().lower()
    if not LFDI_RE.match(lf):
        raise HttpError(400, f"{where}: {raw[:48]!r} is not 40 hexadecimal digits")
    return lf


def error_body(reason: int, message: str) -> bytes:
    """An Error document; sep.xsd's Error has no text field, so the reason (naming the element)
    travels as a comment, which keeps the document valid."""
    tree = etree.fromstring(render(m.Error(reasonCode=reason)))
    if message:
        safe = message.replace("--", "- -").replace("\n", " ")[:300]
        tree.insert(0, etree.Comment(f" {safe} "))
    return bytes(etree.tostring(tree))


@dataclass
class Server:
    """All the server's state; function sets read and change it, the core owns it."""

    cfg: BridgeConfig
    sink: Sink
    default_base: dict[str, Any]
    devices: dict[int, Device] = field(default_factory=dict)
    by_lfdi: dict[str, Device] = field(default_factory=dict)
    mups: dict[int, Mup] = field(default_factory=dict)
    # mRIDs of mirror data -> the device (eid) that owns them; another device's is refused
    mrid_owner: dict[str, int] = field(default_factory=dict)
    next_eid: int = 1
    next_mup: int = 1
    poll_rates: dict[str, int] = field(default_factory=dict)  # runtime overrides of the site file
    post_rates: dict[str, int] = field(default_factory=dict)
    denied: set[str] = field(default_factory=set)  # LFDIs whose access is revoked
    aggregators: dict[str, str] = field(default_factory=dict)  # certificate LFDI -> name
    subscriptions: dict[int, Subscription] = field(default_factory=dict)
    next_sub: int = 1
    outbox: list[Notification] = field(default_factory=list)  # drained by the service
    notify_stats: dict[str, int] = field(default_factory=dict)  # the notifier's counters

    def poll_rate(self, resource: str) -> int:
        """pollRate (s) of a resource: runtime setting, else the site file's, else the default."""
        if resource in self.poll_rates:
            return self.poll_rates[resource]
        return self.cfg.poll_rates.get(resource, self.cfg.poll_rate_s)

    def post_rate(self, resource: str) -> int | None:
        if resource in self.post_rates:
            return self.post_rates[resource]
        return self.cfg.post_rates.get(resource)

    def mrid(self, *parts: object) -> str:
        """A server mRID: stable, 32 hex digits, the last 8 digits the PEN (CSIP-AUS)."""
        return server_mrid(*parts)[:24] + f"{self.cfg.pen % 10**8:08d}"

    def add_device(
        self, name: str, lfdi: str, sfdi: int, pin: int | None, now: int, legacy: bool
    ) -> Device:
        dev = Device(self.next_eid, name, lfdi, sfdi, pin, now, now, legacy)
        self.next_eid += 1
        self.devices[dev.eid] = dev
        self.by_lfdi[lfdi] = dev
        return dev

    def announce(self, dev: Device) -> None:
        self.sink.device_added(dev)
        self.sink.points(dev, {mapping.SN: str(dev.sfdi)})


@dataclass
class Ctx:
    """One request, authenticated: what a function-set handler gets."""

    server: Server
    method: str
    path: str
    query: Mapping[str, str]
    body: bytes
    lfdi: str
    dev: Device | None  # the device addressed (under /edev/{n}), else the certificate's own
    now: float
    groups: tuple[str, ...] = ()
    own: Device | None = None  # the certificate's own EndDevice, if registered

    @property
    def aggregator(self) -> bool:
        return self.lfdi in self.server.aggregators

    def visible(self) -> list[Device]:
        """The EndDevices this certificate may see: its own, and an aggregator's managed ones."""
        out = [self.own] if self.own is not None else []
        if self.aggregator:
            out += [d for d in self.server.devices.values() if d.aggregator == self.lfdi]
        return out

    @property
    def cfg(self) -> BridgeConfig:
        return self.server.cfg

    def device(self) -> Device:
        """The registered device making the request; 403 for a certificate not registered."""
        if self.dev is None:
            raise HttpError(403, "device not registered")
        return self.dev


def ok(doc: BaseXmlModel, status: int = 200) -> Reply:
    return Reply(status, render(doc))
