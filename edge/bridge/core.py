"""The 2030.5 server's entry points: requests in, control from MQTT in, changes out. No I/O.

`BridgeCore.handle(method, path, query, body, lfdi)` takes a request already authenticated by
the transport (the LFDI of the client certificate) and returns status, headers and body; the
route table (edge/bridge/routes.py) hands it to one function-set module (edge/bridge/fs/). The
HTTPS shell feeds requests in; the core reports what changed through a `Sink` (the MQTT shell),
which never calls back into the core: set requests reach it through `control()`, wired by the
service.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from edge.bridge import admin, mapping
from edge.bridge.config import BridgeConfig
from edge.bridge.controls import (
    ACTIVE,
    SCHEDULED,
    Control,
    ControlError,
    new_mrid,
    parse_default,
    parse_derc,
    wchamax_fixed_w,
)
from edge.bridge.fs import sub
from edge.bridge.models import CSIPAUS_NS
from edge.bridge.routes import dispatch
from edge.bridge.state import (
    Ctx,
    Device,
    HttpError,
    Mup,
    NullSink,
    Reply,
    Server,
    Sink,
    Subscription,
    error_body,
)
from edge.bridge.xmlcodec import XmlError

log = logging.getLogger(__name__)

__all__ = ["BridgeCore", "Device", "Mup", "Reply", "Sink"]


class BridgeCore:
    def __init__(self, cfg: BridgeConfig, clock: Callable[[], float], sink: Sink | None = None):
        self.cfg = cfg
        self.clock = clock
        self.server = Server(cfg, sink or NullSink(), parse_default(cfg.default_control))
        now = int(clock())
        self.server.aggregators = {a.lfdi: a.name for a in cfg.aggregators}
        for d in cfg.devices:
            legacy = cfg.legacy_xml if d.legacy_xml is None else d.legacy_xml
            self.server.add_device(d.name, d.lfdi, d.sfdi, d.pin, now, legacy)

    # -- state, for the shells and tests -----------------------------------------------------
    @property
    def sink(self) -> Sink:
        return self.server.sink

    @sink.setter
    def sink(self, sink: Sink) -> None:
        self.server.sink = sink

    @property
    def devices(self) -> dict[int, Device]:
        return self.server.devices

    @property
    def by_lfdi(self) -> dict[str, Device]:
        return self.server.by_lfdi

    @property
    def mups(self) -> dict[int, Mup]:
        return self.server.mups

    @property
    def mrid_owner(self) -> dict[str, int]:
        return self.server.mrid_owner

    def device_by_name(self, name: str) -> Device | None:
        return next((d for d in self.devices.values() if d.name == name), None)

    def start(self) -> None:
        """Announce the pre-registered devices (after the sink is ready)."""
        for dev in self.devices.values():
            self.server.announce(dev)

    # -- HTTP --------------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, query: Mapping[str, str], body: bytes, lfdi: str | None
    ) -> Reply:
        try:
            if lfdi is None:
                raise HttpError(403, "no client certificate")
            if lfdi in self.server.denied:
                raise HttpError(403, "access revoked for this certificate")
            dev = self.by_lfdi.get(lfdi)
            aggregator = lfdi in self.server.aggregators
            if dev is None and not self.cfg.allow_registration and not aggregator:
                raise HttpError(403, "unknown certificate and registration is closed")
            now = self.clock()
            if dev is not None:
                dev.last_seen = now
            ctx = Ctx(self.server, method.upper(), path.rstrip("/") or "/", query, body, lfdi,
                      dev, now, own=dev)  # fmt: skip
            reply = dispatch(ctx)
            reply.body = self._ns(reply.body)
            if reply.status == 201 and "/sub/" in (reply.location or ""):
                self.scan_notifications()  # a new subscription: the resource as it is now
            return reply
        except HttpError as exc:
            if exc.status in (400, 409):
                return Reply(exc.status, error_body(exc.reason, exc.message))
            return Reply(exc.status)
        except XmlError as exc:
            log.info("bad XML on %s %s: %s", method, path, exc)
            return Reply(400, error_body(exc.reason, str(exc)))

    # -- control from MQTT -------------------------------------------------------------------
    def control(self, name: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        """A set request for device `name`: key "derc" or a point key. Raises ControlError."""
        out = self._control(name, key, body)
        dev = self.device_by_name(name)
        self.scan_notifications(None if dev is None else dev.eid)
        return out

    def _control(self, name: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        if key == "derc":
            return self.set_derc(name, body)
        if key == "dderc":
            return self.set_dderc(name, body)
        if key == mapping.WCHAMAX:
            if "value" not in body:
                raise ControlError("invalid_payload", "value: required (W)")
            return self.set_wchamax(name, body["value"])
        if key in mapping.POINTS:
            raise ControlError("not_writable", f"{key}: read-only (only 124/WChaMax and derc)")
        raise ControlError("unknown_point", f"{key}: not a point of a 2030.5 device")

    def set_wchamax(self, name: str, value: Any) -> dict[str, Any]:
        """`set/124/WChaMax` (W) -> a DERControl with opModFixedW. Raises ControlError."""
        dev = self._dev_or_error(name)
        now = self.clock()
        fixed = wchamax_fixed_w(value, dev.set_max_charge_w)
        c = Control(
            mrid=new_mrid(self.cfg.pen),
            creation_time=int(now),
            start=int(now),
            duration=self.cfg.wchamax_duration_s,
            base={"opModFixedW": fixed},
            primacy=self.cfg.primacy,
            description="WChaMax",
        )
        superseded = dev.schedule.add(c, now)
        dev.wchamax = (c.mrid, float(value))
        self.sink.points(dev, {mapping.WCHAMAX: float(value)})
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
        c = parse_derc(body, now, self.cfg.primacy, dev.limits(), self.cfg.pen)
        superseded = dev.schedule.add(c, now)
        return {"mrid": c.mrid, "status": c.status(now), "superseded": superseded}

    def set_dderc(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """`set/dderc`: replace the DefaultDERControl of one program (`primacy`, default the
        site's), or `{"reset": true}` to return to the site file's. Raises ControlError."""
        dev = self._dev_or_error(name)
        fields = dict(body)
        primacy = fields.pop("primacy", self.cfg.primacy)
        if isinstance(primacy, bool) or not isinstance(primacy, int) or not 0 <= primacy <= 255:
            raise ControlError("invalid_payload", "primacy: expected an integer 0..255")
        if fields.get("reset") is True and set(fields) == {"reset"}:
            dev.defaults.pop(primacy, None)
            dev.dderc_seq += 1
            return {"primacy": primacy, "default": self.server.default_base}
        base = parse_default(fields)
        dev.defaults[primacy] = base
        dev.dderc_seq += 1
        return {"primacy": primacy, "default": base}

    def admin(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        """`{root}/bridge/admin/{op}` (edge/bridge/admin.py). Raises ControlError."""
        handler = admin.OPS.get(op)
        if handler is None:
            raise ControlError("unknown_point", f"{op}: not an admin op ({', '.join(admin.OPS)})")
        out = handler(self.server, body, int(self.clock()))
        self.scan_notifications()
        return out

    def scan_notifications(self, only: int | None = None) -> int:
        """Queue Notifications (in `server.outbox`) for subscribed resources that changed."""
        return sub.scan(self.server, self.clock(), self._render, only)

    def _render(self, s: Subscription) -> bytes | None:
        """The subscribed resource now, as the subscriber's certificate would GET it."""
        own = self.by_lfdi.get(s.cert)
        ctx = Ctx(self.server, "GET", s.resource, {"l": str(s.limit)}, b"", s.cert, own,
                  self.clock(), own=own)  # fmt: skip
        try:
            reply = dispatch(ctx)
        except (HttpError, XmlError):
            return None
        if reply.status != 200:
            return None
        return self._ns(reply.body)

    def _ns(self, body: bytes) -> bytes:
        if self.cfg.csipaus_ns != CSIPAUS_NS and body:
            return body.replace(CSIPAUS_NS.encode(), self.cfg.csipaus_ns.encode())
        return body

    def tick(self) -> None:
        """Periodic: `124/WChaMax` becomes null once its DERControl is no longer live; events
        that start or end change subscribed resources."""
        self.scan_notifications()
        now = self.clock()
        for dev in self.devices.values():
            if dev.wchamax is None:
                continue
            c = dev.schedule.get(dev.wchamax[0])
            if c is None or c.status(now) not in (SCHEDULED, ACTIVE):
                dev.wchamax = None
                self.sink.points(dev, {mapping.WCHAMAX: None})

    def wchamax_now(self, dev: Device) -> float | None:
        """`124/WChaMax` while its DERControl is scheduled or active; None once it is not."""
        if dev.wchamax is None:
            return None
        c = dev.schedule.get(dev.wchamax[0])
        if c is None or c.status(self.clock()) not in (SCHEDULED, ACTIVE):
            return None
        return dev.wchamax[1]

    def _dev_or_error(self, name: str) -> Device:
        dev = self.device_by_name(name)
        if dev is None:
            raise ControlError("unknown_point", f"device {name!r} is not a 2030.5 device here")
        return dev
