"""The 2030.5 server's logic: resources, routing, access, paging, state. No I/O.

`BridgeCore.handle(method, path, query, body, lfdi)` takes a request already authenticated by
the transport (the LFDI of the client certificate) and returns status, headers and body. The
HTTPS shell (edge/bridge/http.py) and the MQTT shell (edge/bridge/mqtt_shell.py) are thin
wrappers: the shell feeds requests in, and the core reports what changed through `Sink`.

URL layout (clients follow hrefs, so it is ours to choose): everything a device owns lives
under `/edev/{n}/...`, so one prefix check keeps devices apart; mirror usage points live under
`/mup/{id}` and carry their owner.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from envoy_schema.server.schema.sep2 import der, end_device, event, function_set_assignments
from envoy_schema.server.schema.sep2.der_control_types import ActivePower, ReactivePower
from envoy_schema.server.schema.sep2.device_capability import DeviceCapabilityResponse
from envoy_schema.server.schema.sep2.identification import Link, ListLink
from envoy_schema.server.schema.sep2.response import Response as ResponseOut
from envoy_schema.server.schema.sep2.response import ResponseType
from envoy_schema.server.schema.sep2.time import TimeResponse
from envoy_schema.server.schema.sep2.types import DateTimeIntervalType
from lxml import etree
from pydantic_xml import BaseXmlModel

from edge.bridge import mapping, schema
from edge.bridge import models as m
from edge.bridge.config import BridgeConfig
from edge.bridge.controls import (
    ACTIVE,
    SCHEDULED,
    Control,
    ControlError,
    Limits,
    Schedule,
    new_mrid,
    parse_base,
    parse_derc,
    scaled,
    wchamax_fixed_w,
)
from edge.bridge.identity import LFDI_RE, sfdi_from_lfdi, sfdi_valid
from edge.bridge.timeres import time_fields
from edge.bridge.xmlcodec import XmlError, load, parse_tree, render, root_name

log = logging.getLogger(__name__)

MAX_PAGE = 255
T = TypeVar("T")
RESPONSE_HISTORY = 256
RENDER_CACHE = 64
REASON_FORMAT, REASON_VALUES = 0, 1


@dataclass
class Reply:
    status: int
    body: bytes = b""
    location: str | None = None

    @property
    def content_type(self) -> str | None:
        return m.CONTENT_TYPE if self.body else None


class Sink(Protocol):
    """What the core reports; the MQTT shell implements it. Calls must not block."""

    def device_added(self, dev: Device) -> None: ...
    def points(self, dev: Device, values: dict[str, Any]) -> None: ...
    def event(self, dev: Device, body: dict[str, Any]) -> None: ...


class NullSink:
    def device_added(self, dev: Device) -> None:
        pass

    def points(self, dev: Device, values: dict[str, Any]) -> None:
        pass

    def event(self, dev: Device, body: dict[str, Any]) -> None:
        pass


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
    docs: dict[str, bytes] = field(default_factory=dict)  # served back on GET, as sent
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

    @property
    def base(self) -> str:
        return f"/edev/{self.eid}"

    def wmax(self) -> float | None:
        return mapping.wmax(self.settings, self.wrtg)

    def limits(self) -> Limits:
        return Limits(max_w=self.set_max_w, max_charge_w=self.set_max_charge_w)


@dataclass
class Mup:
    mid: int
    owner: int
    doc: m.MirrorUsagePointOut | None
    mrid: str
    readings: dict[str, str] = field(default_factory=dict)  # MMR mRID -> description
    pow10: dict[str, int] = field(default_factory=dict)  # MMR mRID or description -> multiplier


class HttpError(Exception):
    def __init__(self, status: int, message: str = "", reason: int = REASON_VALUES) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


def _mrid(*parts: object) -> str:
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


class BridgeCore:
    def __init__(self, cfg: BridgeConfig, clock: Callable[[], float], sink: Sink | None = None):
        self.cfg = cfg
        self.clock = clock
        self.sink: Sink = sink or NullSink()
        self.devices: dict[int, Device] = {}
        self.by_lfdi: dict[str, Device] = {}
        self.mups: dict[int, Mup] = {}
        # mRIDs of mirror data -> the device (eid) that owns them; another device's is refused
        self.mrid_owner: dict[str, int] = {}
        self._next_eid = 1
        self._next_mup = 1
        self.default_base = parse_base(cfg.default_control, Limits())
        now = int(clock())
        for d in cfg.devices:
            legacy = cfg.legacy_xml if d.legacy_xml is None else d.legacy_xml
            self._add_device(d.name, d.lfdi, d.sfdi, d.pin, now, legacy)

    # -- devices ---------------------------------------------------------------------------
    def _add_device(
        self, name: str, lfdi: str, sfdi: int, pin: int | None, now: int, legacy: bool
    ) -> Device:
        dev = Device(self._next_eid, name, lfdi, sfdi, pin, now, now, legacy)
        self._next_eid += 1
        self.devices[dev.eid] = dev
        self.by_lfdi[lfdi] = dev
        return dev

    def device_by_name(self, name: str) -> Device | None:
        return next((d for d in self.devices.values() if d.name == name), None)

    def start(self) -> None:
        """Announce the pre-registered devices (after the sink is ready)."""
        for dev in self.devices.values():
            self._announce(dev)

    def _announce(self, dev: Device) -> None:
        self.sink.device_added(dev)
        self.sink.points(dev, {"1/SN": str(dev.sfdi)})

    # -- entry point -----------------------------------------------------------------------
    def handle(
        self, method: str, path: str, query: Mapping[str, str], body: bytes, lfdi: str | None
    ) -> Reply:
        try:
            return self._handle(method.upper(), path.rstrip("/") or "/", query, body, lfdi)
        except HttpError as exc:
            if exc.status in (400, 409):
                return Reply(exc.status, error_body(exc.reason, exc.message))
            return Reply(exc.status)
        except XmlError as exc:
            log.info("bad XML on %s %s: %s", method, path, exc)
            return Reply(400, error_body(REASON_FORMAT, str(exc)))

    def _handle(
        self, method: str, path: str, query: Mapping[str, str], body: bytes, lfdi: str | None
    ) -> Reply:
        if lfdi is None:
            raise HttpError(403, "no client certificate")
        dev = self.by_lfdi.get(lfdi)
        if dev is None and not self.cfg.allow_registration:
            raise HttpError(403, "unknown certificate and registration is closed")
        now = self.clock()
        if dev is not None:
            dev.last_seen = now
        if path == "/dcap":
            self._only(method, "GET")
            return self._ok(self._dcap(dev))
        if path == "/tm":
            self._only(method, "GET")
            tf = time_fields(now, self.cfg.timezone)
            return self._ok(TimeResponse(href="/tm", **tf.__dict__))
        if path == "/edev":
            if method == "POST":
                return self._register(body, lfdi, int(now))
            self._only(method, "GET")
            items = [dev] if dev is not None else []
            pg, total = page(items, query)
            return self._ok(
                end_device.EndDeviceListResponse(
                    href="/edev",
                    all_=total,
                    results=len(pg),
                    pollRate=self.cfg.poll_rate_s,
                    EndDevice=[self._end_device(d) for d in pg] or None,
                )
            )
        if dev is None and path == "/mup" and method == "GET":
            # /dcap advertises the list before registration: it is empty, not forbidden
            return self._ok(
                m.MirrorUsagePointList(
                    href="/mup", all_=0, results=0, pollRate=self.cfg.poll_rate_s
                )
            )
        if dev is None:
            raise HttpError(403, "device not registered")
        if path == "/mup" or path.startswith("/mup/"):
            return self._mup(method, path, query, body, dev, int(now))
        mt = re.fullmatch(r"/edev/(\d+)(/.*)?", path)
        if mt is None:
            raise HttpError(404)
        if int(mt.group(1)) != dev.eid:
            # Another device's resources: refused without saying whether they exist.
            raise HttpError(403, "not your EndDevice")
        return self._edev(method, mt.group(2) or "", query, body, dev, now)

    @staticmethod
    def _only(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise HttpError(405)

    @staticmethod
    def _ok(doc: BaseXmlModel, status: int = 200) -> Reply:
        return Reply(status, render(doc))

    # -- resources -------------------------------------------------------------------------
    def _dcap(self, dev: Device | None) -> DeviceCapabilityResponse:
        n_mup = sum(1 for u in self.mups.values() if dev is not None and u.owner == dev.eid)
        return DeviceCapabilityResponse(
            href="/dcap",
            pollRate=self.cfg.poll_rate_s,
            TimeLink=Link(href="/tm"),
            EndDeviceListLink=ListLink(href="/edev", all_=1 if dev is not None else 0),
            MirrorUsagePointListLink=ListLink(href="/mup", all_=n_mup),
        )

    def _end_device(self, d: Device) -> m.EndDevice:
        b = d.base
        return m.EndDevice(
            href=b,
            DERListLink=ListLink(href=f"{b}/der", all_=1),
            DeviceInformationLink=Link(href=f"{b}/di"),
            DeviceStatusLink=Link(href=f"{b}/dstat"),
            lFDI=d.lfdi.upper(),
            PowerStatusLink=Link(href=f"{b}/ps"),
            sFDI=d.sfdi,
            changedTime=d.changed_time,
            enabled=True,
            FunctionSetAssignmentsListLink=ListLink(href=f"{b}/fsa", all_=1),
            RegistrationLink=None if d.pin is None else Link(href=f"{b}/rg"),
        )

    def _register(self, body: bytes, lfdi: str, now: int) -> Reply:
        tree = self._tree(body, "EndDevice", legacy=self.cfg.legacy_xml)
        req = load(m.EndDeviceIn, tree)
        sfdi = sfdi_from_lfdi(lfdi)
        if req.sFDI is None:
            raise HttpError(400, "EndDevice.sFDI: required")
        if not sfdi_valid(req.sFDI):
            raise HttpError(400, f"EndDevice.sFDI: {req.sFDI} has a wrong check digit")
        posted_lfdi = _lfdi(req.lFDI, "EndDevice.lFDI")
        if req.sFDI != sfdi or (posted_lfdi is not None and posted_lfdi != lfdi):
            raise HttpError(409, "EndDevice sFDI/lFDI do not match the client certificate")
        dev = self.by_lfdi.get(lfdi)
        if dev is None:
            if any(d.sfdi == sfdi for d in self.devices.values()):
                raise HttpError(409, f"sFDI {sfdi} already registered to another device")
            dev = self._add_device(f"edev-{sfdi}", lfdi, sfdi, None, now, self.cfg.legacy_xml)
            dev.last_seen = self.clock()
            self._announce(dev)
        elif not self.cfg.allow_reregistration:
            raise HttpError(409, f"LFDI {lfdi} is already registered as {dev.base}")
        else:
            dev.changed_time = req.changedTime or dev.changed_time
        return Reply(201, location=dev.base)

    def _tree(self, body: bytes, *roots: str, legacy: bool = False) -> etree._Element:
        """Parse and check a device document: strict unless `legacy` (then only tolerant)."""
        tree = parse_tree(body, self.cfg.max_body_bytes, legacy)
        name = root_name(tree)
        if name not in roots:
            raise XmlError(f"expected a {' or '.join(roots)} document, got {name}")
        if not legacy:
            schema.check(tree)
        return tree

    def _edev(
        self, method: str, sub: str, query: Mapping[str, str], body: bytes, dev: Device, now: float
    ) -> Reply:
        b = dev.base
        if sub == "":
            self._only(method, "GET")
            return self._ok(self._end_device(dev))
        if sub == "/rg":
            self._only(method, "GET")
            if dev.pin is None:
                raise HttpError(404)
            return self._ok(
                end_device.RegistrationResponse(
                    href=f"{b}/rg",
                    pollRate=self.cfg.poll_rate_s,
                    dateTimeRegistered=dev.registered_at,
                    pIN=dev.pin,
                )
            )
        if sub in (
            "/di",
            "/dstat",
            "/ps",
            "/der/1/dercap",
            "/der/1/derg",
            "/der/1/ders",
            "/der/1/dera",
        ):
            if method == "GET":
                doc = dev.docs.get(sub)
                if doc is None:
                    raise HttpError(404)
                return Reply(200, doc)
            self._only(method, "PUT", "POST")
            self._put(sub, body, dev)
            return Reply(204)
        if sub == "/fsa":
            self._only(method, "GET")
            pg, total = page([1], query)
            return self._ok(
                function_set_assignments.FunctionSetAssignmentsListResponse(
                    href=f"{b}/fsa",
                    all_=total,
                    results=len(pg),
                    pollRate=self.cfg.poll_rate_s,
                    FunctionSetAssignments=[self._fsa(dev) for _ in pg] or None,
                )
            )
        if sub == "/fsa/1":
            self._only(method, "GET")
            return self._ok(self._fsa(dev))
        if sub == "/der":
            self._only(method, "GET")
            pg, total = page([1], query)
            return self._ok(
                m.DERList(
                    href=f"{b}/der",
                    all_=total,
                    results=len(pg),
                    pollRate=self.cfg.poll_rate_s,
                    DER_=[self._der(dev, now) for _ in pg] or None,
                )
            )
        if sub == "/der/1":
            self._only(method, "GET")
            return self._ok(self._der(dev, now))
        if sub == "/derp":
            self._only(method, "GET")
            progs = self._primacies(dev)
            ppg, total = page(progs, query)
            return self._ok(
                der.DERProgramListResponse(
                    href=f"{b}/derp",
                    all_=total,
                    results=len(ppg),
                    pollRate=self.cfg.poll_rate_s,
                    DERProgram=[self._program(dev, p, now) for p in ppg] or None,
                )
            )
        mp = re.fullmatch(r"/derp/(\d+)(/.*)?", sub)
        if mp is not None:
            return self._derp(method, int(mp.group(1)), mp.group(2) or "", query, dev, now)
        if sub == "/rsp":
            if method == "POST":
                return self._response(body, dev, now)
            self._only(method, "GET")
            rpg, total = page(dev.responses, query, lambda r: r.createdDateTime or 0)
            return self._ok(
                m.ResponseList(
                    href=f"{b}/rsp",
                    all_=total,
                    results=len(rpg),
                    Response_=[self._response_out(dev, r) for r in rpg] or None,
                )
            )
        mr = re.fullmatch(r"/rsp/(\d+)", sub)
        if mr is not None:
            self._only(method, "GET")
            r = next((x for x in dev.responses if x.href == f"{b}/rsp/{mr.group(1)}"), None)
            if r is None:
                raise HttpError(404)
            return self._ok(self._response_out(dev, r))
        raise HttpError(404)

    def _fsa(self, dev: Device) -> function_set_assignments.FunctionSetAssignmentsResponse:
        return function_set_assignments.FunctionSetAssignmentsResponse(
            href=f"{dev.base}/fsa/1",
            mRID=_mrid(dev.lfdi, "fsa"),
            description="DER programs",
            DERProgramListLink=ListLink(href=f"{dev.base}/derp", all_=len(self._primacies(dev))),
            TimeLink=Link(href="/tm"),
        )

    def _der(self, dev: Device, now: float) -> der.DER:
        b = f"{dev.base}/der/1"
        current = self._current_program(dev, now)
        return der.DER(
            href=b,
            AssociatedDERProgramListLink=ListLink(
                href=f"{dev.base}/derp", all_=len(self._primacies(dev))
            ),
            CurrentDERProgramLink=None
            if current is None
            else Link(href=f"{dev.base}/derp/{current}"),
            DERAvailabilityLink=Link(href=f"{b}/dera"),
            DERCapabilityLink=Link(href=f"{b}/dercap"),
            DERSettingsLink=Link(href=f"{b}/derg"),
            DERStatusLink=Link(href=f"{b}/ders"),
        )

    # -- device-posted resources -----------------------------------------------------------
    def _put(self, sub: str, body: bytes, dev: Device) -> None:
        """Validate the whole document, then store it; a refused document changes nothing."""
        expected = PUT_ROOTS[sub]
        tree = self._tree(body, expected, legacy=dev.legacy_xml)
        valid = True
        if dev.legacy_xml:
            # Tolerated, mapped to topics; served back (and trusted for limits) only if valid.
            try:
                schema.check(tree)
            except XmlError:
                valid = False
        values: dict[str, Any] = {}
        changes: dict[str, Any] = {}
        if sub == "/di":
            values = mapping.device_information(load(m.DeviceInformation, tree))
        elif sub == "/dstat":
            load(m.DeviceStatus, tree)
        elif sub == "/ps":
            values = mapping.power_status(load(m.PowerStatus, tree))
        elif sub == "/der/1/dercap":
            values = mapping.der_capability(load(m.DERCapabilityIn, tree))
            if "120/WRtg" in values:
                changes["wrtg"] = values["120/WRtg"]
        elif sub == "/der/1/derg":
            st = load(m.DERSettingsIn, tree)
            if valid:  # only a valid document may become the limit controls are checked against
                changes["settings"] = st
                changes["set_max_charge_w"] = mapping.uv(st.setMaxChargeRateW)
                changes["set_max_w"] = mapping.uv(st.setMaxW)
        elif sub == "/der/1/ders":
            values = mapping.der_status(load(m.DERStatusIn, tree))
        elif sub == "/der/1/dera":
            changes["availability_s"] = load(m.DERAvailabilityIn, tree).availabilityDuration
        # -- commit: nothing above stored anything
        for k, v in changes.items():
            setattr(dev, k, v)
        if sub in ("/der/1/dercap", "/der/1/derg", "/der/1/dera"):
            values.update(self._derived(dev))
        if valid:
            tree.set("href", f"{dev.base}{sub}")
            dev.docs[sub] = etree.tostring(tree)
        else:
            dev.docs.pop(sub, None)
        if values:
            self.sink.points(dev, values)

    @staticmethod
    def _derived(dev: Device) -> dict[str, Any]:
        """Points computed from several resources: WMax, and DCWh from availability and WMax."""
        out: dict[str, Any] = {}
        wmax = dev.wmax()
        if wmax is not None:
            out["121/WMax"] = wmax
        dcwh = mapping.availability_wh(dev.availability_s, wmax)
        if dcwh is not None:
            out["404/DCWh"] = dcwh
        return out

    # -- mirror usage points ---------------------------------------------------------------
    def _mup(
        self, method: str, path: str, query: Mapping[str, str], body: bytes, dev: Device, now: int
    ) -> Reply:
        if path == "/mup":
            if method == "POST":
                return self._post_mup(body, dev)
            self._only(method, "GET")
            own = [u for u in self.mups.values() if u.owner == dev.eid and u.doc is not None]
            pg, total = page(own, query)
            return self._ok(
                m.MirrorUsagePointList(
                    href="/mup",
                    all_=total,
                    results=len(pg),
                    pollRate=self.cfg.poll_rate_s,
                    mirrorUsagePoints=[u.doc for u in pg if u.doc is not None],
                )
            )
        mm = re.fullmatch(r"/mup/(\d+)", path)
        found = self.mups.get(int(mm.group(1))) if mm else None
        if found is None or found.owner != dev.eid:
            raise HttpError(404)  # another device's usage point does not exist for this one
        if method == "GET":
            if found.doc is None:
                raise HttpError(404)
            return self._ok(found.doc)
        self._only(method, "POST", "PUT")
        tree = self._tree(
            body, "MirrorMeterReading", "MirrorMeterReadingList", legacy=dev.legacy_xml
        )
        if root_name(tree) == "MirrorMeterReading":
            readings = [load(m.MirrorMeterReadingIn, tree)]
        else:
            readings = load(m.MirrorMeterReadingListIn, tree).readings or []
        self._check_mrids(dev, [r.mRID for r in readings])
        self._readings(dev, found, readings)
        return Reply(201, location=f"/mup/{found.mid}")

    def _post_mup(self, body: bytes, dev: Device) -> Reply:
        tree = self._tree(body, "MirrorUsagePoint", legacy=dev.legacy_xml)
        mup_in = load(m.MirrorUsagePointIn, tree)
        owner = _lfdi(mup_in.deviceLFDI, "MirrorUsagePoint.deviceLFDI")
        if owner is not None and owner != dev.lfdi:
            raise HttpError(403, "MirrorUsagePoint.deviceLFDI is not your certificate's LFDI")
        mrid = (mup_in.mRID or "").strip().upper()
        if not mrid:
            raise HttpError(400, "MirrorUsagePoint.mRID: required")
        readings = mup_in.readings or []
        self._check_mrids(dev, [mrid, *(r.mRID for r in readings)])
        # -- commit
        mup = next((u for u in self.mups.values() if u.owner == dev.eid and u.mrid == mrid), None)
        if mup is None:
            mup = Mup(self._next_mup, dev.eid, None, mrid)
            self._next_mup += 1
            self.mups[mup.mid] = mup
        self.mrid_owner[mrid] = dev.eid
        strict = None if dev.legacy_xml else load(m.MirrorUsagePointOut, tree)
        if dev.legacy_xml:
            try:
                schema.check(tree)
                strict = load(m.MirrorUsagePointOut, tree)
            except XmlError:
                strict = None
        if strict is not None:
            strict.href = f"/mup/{mup.mid}"
            strict.mirrorMeterReadings = None  # readings are write-only here
            mup.doc = strict
        self._readings(dev, mup, readings)
        return Reply(201, location=f"/mup/{mup.mid}")

    def _check_mrids(self, dev: Device, mrids: Sequence[str | None]) -> None:
        """Mirror mRIDs are global: one already used by another device is a conflict (409)."""
        for raw in mrids:
            key = (raw or "").strip().upper()
            owner = self.mrid_owner.get(key)
            if key and owner is not None and owner != dev.eid:
                raise HttpError(409, f"mRID {key} belongs to another device")

    def _readings(self, dev: Device, mup: Mup, readings: list[m.MirrorMeterReadingIn]) -> None:
        values: dict[str, Any] = {}
        for r in readings:
            key = (r.mRID or "").strip().upper()
            if key:
                self.mrid_owner[key] = dev.eid
            desc = r.description or mup.readings.get(key)
            if key and r.description:
                mup.readings[key] = r.description
            if r.readingType is not None and r.readingType.powerOfTenMultiplier is not None:
                mup.pow10[key or desc or ""] = r.readingType.powerOfTenMultiplier
            point = mapping.reading_point(desc)
            if point is None:
                continue
            mult = mup.pow10.get(key or desc or "", 0)
            latest = r.reading
            if r.mirrorReadingSets:
                sets = [s for s in r.mirrorReadingSets if s.readings]
                if sets:
                    latest = sets[-1].readings[-1]  # type: ignore[index]
            if latest is not None and latest.value is not None:
                values[point] = mapping.scale(latest.value, mult)
        if values:
            self.sink.points(dev, values)

    # -- DER programs and controls ---------------------------------------------------------
    def _primacies(self, dev: Device) -> list[int]:
        return sorted(dev.schedule.primacies() | {self.cfg.primacy})

    def _current_program(self, dev: Device, now: float) -> int | None:
        for p in self._primacies(dev):  # lowest primacy value wins
            if dev.schedule.active(p, now):
                return p
        return None

    def _program(self, dev: Device, p: int, now: float) -> der.DERProgramResponse:
        b = f"{dev.base}/derp/{p}"
        return der.DERProgramResponse(
            href=b,
            mRID=_mrid(dev.lfdi, "derp", p),
            description=f"primacy {p}",
            ActiveDERControlListLink=ListLink(
                href=f"{b}/actderc", all_=len(dev.schedule.active(p, now))
            ),
            DefaultDERControlLink=Link(href=f"{b}/dderc"),
            DERControlListLink=ListLink(href=f"{b}/derc", all_=len(dev.schedule.listed(p, now))),
            primacy=p,
        )

    def _derp(
        self, method: str, p: int, sub: str, query: Mapping[str, str], dev: Device, now: float
    ) -> Reply:
        self._only(method, "GET")
        if p not in self._primacies(dev):
            raise HttpError(404)
        b = f"{dev.base}/derp/{p}"
        if sub == "":
            return self._ok(self._program(dev, p, now))
        if sub in ("/derc", "/actderc"):
            items = dev.schedule.listed(p, now) if sub == "/derc" else dev.schedule.active(p, now)
            pg, total = page(items, query, lambda c: c.start)
            # The polling path: a document depends only on each event's version and status,
            # so identical polls reuse the rendered bytes (rendering is ~1 ms per list).
            key = (f"{b}{sub}", total, tuple((c.mrid, c.version, c.status(now)) for c in pg))
            body = dev.rendered.get(key)
            if body is None:
                body = render(
                    der.DERControlListResponse(
                        href=f"{b}{sub}",
                        all_=total,
                        results=len(pg),
                        DERControl=[self._control_out(dev, c, now) for c in pg] or None,
                    )
                )
                if len(dev.rendered) >= RENDER_CACHE:
                    dev.rendered.clear()
                dev.rendered[key] = body
            return Reply(200, body)
        mc = re.fullmatch(r"/derc/([0-9A-Fa-f]{1,32})", sub)
        if mc is not None:
            c = dev.schedule.get(mc.group(1))
            if c is None or c.primacy != p or c.status(now) is None:
                raise HttpError(404)
            return self._ok(self._control_out(dev, c, now))
        if sub == "/dderc":
            body = render(
                der.DefaultDERControl(
                    href=f"{b}/dderc",
                    mRID=_mrid(dev.lfdi, "dderc", p),
                    description="used when no control is active",
                    DERControlBase_=self._base_out(self.default_base),
                )
            )
            return Reply(200, _ensure_base(body))
        raise HttpError(404)

    @staticmethod
    def _base_out(base: dict[str, Any]) -> der.DERControlBase:
        kw: dict[str, Any] = {}
        for k, v in base.items():
            if k == "opModTargetW":
                mult, val = scaled(v)
                kw[k] = ActivePower(multiplier=mult, value=val)
            elif k == "opModTargetVar":
                mult, val = scaled(v)
                kw[k] = ReactivePower(multiplier=mult, value=val)
            else:
                kw[k] = v
        return der.DERControlBase(**kw)

    def _control_out(self, dev: Device, c: Control, now: float) -> der.DERControlResponse:
        status = c.status(now)
        assert status is not None
        return der.DERControlResponse(
            href=f"{dev.base}/derp/{c.primacy}/derc/{c.mrid}",
            replyTo=f"{dev.base}/rsp",
            responseRequired="03",  # message received + specific response
            mRID=c.mrid,
            description=c.description,
            version=c.version,
            creationTime=c.creation_time,
            EventStatus_=event.EventStatus(
                currentStatus=status,
                dateTime=c.status_time(now),
                potentiallySuperseded=False,
            ),
            interval=DateTimeIntervalType(duration=c.duration, start=c.start),
            randomizeDuration=c.randomize_duration,
            randomizeStart=c.randomize_start,
            DERControlBase_=self._base_out(c.base),
        )

    # -- responses -------------------------------------------------------------------------
    def _response(self, body: bytes, dev: Device, now: float) -> Reply:
        tree = self._tree(body, "Response", "DERControlResponse", legacy=dev.legacy_xml)
        r = load(m.ResponseIn, _retag(tree, "Response"))
        if r.subject is None or dev.schedule.get(r.subject) is None:
            raise HttpError(400, f"Response.subject {r.subject!r} is not one of your controls")
        lfdi = _lfdi(r.endDeviceLFDI, "Response.endDeviceLFDI")
        if lfdi is not None and lfdi != dev.lfdi:
            raise HttpError(400, "Response.endDeviceLFDI is not your certificate's LFDI")
        if r.status is None or r.status not in {t.value for t in ResponseType}:
            raise HttpError(400, f"Response.status {r.status!r}: not a 2030.5 ResponseType")
        dev.response_seq += 1
        r.href = f"{dev.base}/rsp/{dev.response_seq}"
        r.subject = r.subject.upper()
        r.createdDateTime = r.createdDateTime if r.createdDateTime is not None else int(now)
        dev.responses.append(r)
        del dev.responses[:-RESPONSE_HISTORY]
        self.sink.event(
            dev,
            {
                "kind": "response",
                "subject": r.subject,
                "status": r.status,
                "createdDateTime": r.createdDateTime,
            },
        )
        return Reply(201, location=r.href)

    @staticmethod
    def _response_out(dev: Device, r: m.ResponseIn) -> ResponseOut:
        return ResponseOut(
            href=r.href,
            createdDateTime=r.createdDateTime,
            endDeviceLFDI=dev.lfdi.upper(),
            status=None if r.status is None else ResponseType(r.status),
            subject=r.subject or "",
        )

    # -- control from MQTT -----------------------------------------------------------------
    def set_wchamax(self, name: str, value: Any) -> dict[str, Any]:
        """`set/124/WChaMax` (W) -> a DERControl with opModFixedW. Raises ControlError."""
        dev = self._dev_or_error(name)
        now = self.clock()
        fixed = wchamax_fixed_w(value, dev.set_max_charge_w)
        c = Control(
            mrid=new_mrid(),
            creation_time=int(now),
            start=int(now),
            duration=self.cfg.wchamax_duration_s,
            base={"opModFixedW": fixed},
            primacy=self.cfg.primacy,
            description="WChaMax",
        )
        superseded = dev.schedule.add(c, now)
        dev.wchamax = (c.mrid, float(value))
        self.sink.points(dev, {"124/WChaMax": float(value)})
        return {"value": float(value), "raw": fixed, "mrid": c.mrid, "superseded": superseded}

    def set_derc(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """`set/derc`: schedule a JSON DERControl, or `{"cancel": mrid}`. Raises ControlError."""
        dev = self._dev_or_error(name)
        now = self.clock()
        if "cancel" in body:
            if set(body) != {"cancel"} or not isinstance(body["cancel"], str):
                raise ControlError("invalid_payload", 'cancel: give only {"cancel": "<mRID>"}')
            c = dev.schedule.cancel(body["cancel"], now)
            return {"mrid": c.mrid, "status": c.status(now)}
        c = parse_derc(body, now, self.cfg.primacy, dev.limits())
        superseded = dev.schedule.add(c, now)
        return {"mrid": c.mrid, "status": c.status(now), "superseded": superseded}

    def wchamax_now(self, dev: Device) -> float | None:
        """`124/WChaMax` while its DERControl is scheduled or active; None once it is not."""
        if dev.wchamax is None:
            return None
        c = dev.schedule.get(dev.wchamax[0])
        now = self.clock()
        if c is None or c.status(now) not in (SCHEDULED, ACTIVE):
            return None
        return dev.wchamax[1]

    def _dev_or_error(self, name: str) -> Device:
        dev = self.device_by_name(name)
        if dev is None:
            raise ControlError("unknown_point", f"device {name!r} is not a 2030.5 device here")
        return dev


PUT_ROOTS = {
    "/di": "DeviceInformation",
    "/dstat": "DeviceStatus",
    "/ps": "PowerStatus",
    "/der/1/dercap": "DERCapability",
    "/der/1/derg": "DERSettings",
    "/der/1/ders": "DERStatus",
    "/der/1/dera": "DERAvailability",
}


def _lfdi(raw: str | None, where: str) -> str | None:
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


def _ensure_base(body: bytes) -> bytes:
    """DERControlBase is required even when empty; the renderer drops empty elements."""
    tree = etree.fromstring(body)
    tag = f"{{{m.NS}}}DERControlBase"
    if tree.find(tag) is not None:
        return body
    base = etree.Element(tag)
    anchor = None
    for name in ("version", "description", "mRID"):
        anchor = tree.find(f"{{{m.NS}}}{name}")
        if anchor is not None:
            break
    if anchor is None:
        tree.insert(0, base)
    else:
        anchor.addnext(base)
    return bytes(etree.tostring(tree))


def _retag(tree: etree._Element, local: str) -> etree._Element:
    tree.tag = f"{{{m.NS}}}{local}"
    return tree
