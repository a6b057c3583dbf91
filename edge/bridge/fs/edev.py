"""EndDevice and Registration: who a client is, and how it joins."""

from __future__ import annotations

from typing import Any

from envoy_schema.server.schema.sep2 import end_device
from envoy_schema.server.schema.sep2.identification import Link, ListLink

from edge.bridge import models as m
from edge.bridge import posted
from edge.bridge.identity import sfdi_from_lfdi, sfdi_valid
from edge.bridge.state import Ctx, Device, HttpError, Reply, ok, page, posted_lfdi
from edge.bridge.xmlcodec import load


def end_device_doc(dev: Device) -> m.EndDevice:
    b = dev.base
    links: dict[str, Any] = {
        p.link: Link(href=f"{b}{p.path}") for p in posted.POSTED if "/der/" not in p.path
    }
    return m.EndDevice(
        href=b,
        DERListLink=ListLink(href=f"{b}/der", all_=1),
        lFDI=dev.lfdi.upper(),
        sFDI=dev.sfdi,
        changedTime=dev.changed_time,
        enabled=True,
        FunctionSetAssignmentsListLink=ListLink(href=f"{b}/fsa", all_=1),
        RegistrationLink=None if dev.pin is None else Link(href=f"{b}/rg"),
        **links,
    )


def edev_list(ctx: Ctx) -> Reply:
    items = [ctx.dev] if ctx.dev is not None else []
    pg, total = page(items, ctx.query)
    return ok(
        end_device.EndDeviceListResponse(
            href="/edev",
            all_=total,
            results=len(pg),
            pollRate=ctx.cfg.poll_rate_s,
            EndDevice=[end_device_doc(d) for d in pg] or None,
        )
    )


def register(ctx: Ctx) -> Reply:
    """POST /edev: in-band registration of the client's own certificate."""
    server, lfdi = ctx.server, ctx.lfdi
    tree = posted.device_tree(ctx, "EndDevice", legacy=ctx.cfg.legacy_xml)
    req = load(m.EndDeviceIn, tree)
    sfdi = sfdi_from_lfdi(lfdi)
    if req.sFDI is None:
        raise HttpError(400, "EndDevice.sFDI: required")
    if not sfdi_valid(req.sFDI):
        raise HttpError(400, f"EndDevice.sFDI: {req.sFDI} has a wrong check digit")
    lf = posted_lfdi(req.lFDI, "EndDevice.lFDI")
    if req.sFDI != sfdi or (lf is not None and lf != lfdi):
        raise HttpError(409, "EndDevice sFDI/lFDI do not match the client certificate")
    dev = server.by_lfdi.get(lfdi)
    if dev is None:
        if any(d.sfdi == sfdi for d in server.devices.values()):
            raise HttpError(409, f"sFDI {sfdi} already registered to another device")
        now = int(ctx.now)
        dev = server.add_device(f"edev-{sfdi}", lfdi, sfdi, None, now, ctx.cfg.legacy_xml)
        dev.last_seen = ctx.now
        server.announce(dev)
    elif not ctx.cfg.allow_reregistration:
        raise HttpError(409, f"LFDI {lfdi} is already registered as {dev.base}")
    else:
        dev.changed_time = req.changedTime or dev.changed_time
    return Reply(201, location=dev.base)


def get_end_device(ctx: Ctx) -> Reply:
    return ok(end_device_doc(ctx.device()))


def registration(ctx: Ctx) -> Reply:
    dev = ctx.device()
    if dev.pin is None:
        raise HttpError(404)
    return ok(
        end_device.RegistrationResponse(
            href=f"{dev.base}/rg",
            pollRate=ctx.cfg.poll_rate_s,
            dateTimeRegistered=dev.registered_at,
            pIN=dev.pin,
        )
    )


ROUTES = [("/edev", {"GET": edev_list, "POST": register}, False)]
DEVICE_ROUTES = [
    ("", {"GET": get_end_device}),
    ("/rg", {"GET": registration}),
]
