"""EndDevice and Registration: who a client is, and how it joins."""

from __future__ import annotations

from typing import Any

from envoy_schema.server.schema.csip_aus.connection_point import ConnectionPointLink
from envoy_schema.server.schema.sep2 import end_device
from envoy_schema.server.schema.sep2.identification import Link, ListLink
from lxml import etree

from edge.bridge import models as m
from edge.bridge import posted
from edge.bridge.fs import sub
from edge.bridge.identity import nmi_valid, sfdi_from_lfdi, sfdi_valid
from edge.bridge.state import Ctx, Device, HttpError, Reply, Server, ok, page, posted_lfdi
from edge.bridge.xmlcodec import XmlError, XmlValueError, load, parse_tree, root_name


def end_device_doc(server: Server, dev: Device) -> m.EndDevice:
    b = dev.base
    links: dict[str, Any] = {
        p.link: Link(href=f"{b}{p.path}") for p in posted.POSTED if "/der/" not in p.path
    }
    return m.EndDevice(
        href=b,
        DERListLink=ListLink(href=f"{b}/der", all_=1),
        deviceCategory=dev.device_category,
        lFDI=dev.lfdi.upper(),
        sFDI=dev.sfdi,
        changedTime=dev.changed_time,
        enabled=True,
        FunctionSetAssignmentsListLink=ListLink(href=f"{b}/fsa", all_=1),
        RegistrationLink=None if dev.pin is None else Link(href=f"{b}/rg"),
        ConnectionPointLink=ConnectionPointLink(href=f"{b}/cp"),
        # a managed device's subscriptions are on its aggregator's EndDevice
        SubscriptionListLink=None
        if dev.aggregator is not None
        else ListLink(href=f"{b}/sub", all_=sub.count(server, dev)),
        postRate=server.post_rate("EndDevice"),
        **links,
    )


def edev_list(ctx: Ctx) -> Reply:
    # an aggregator that registered no EndDevice of its own gets one, first (CSIP-AUS)
    agg: list[Device | None] = [None] if ctx.aggregator and ctx.own is None else []
    pg, total = page([*agg, *ctx.visible()], ctx.query)
    return ok(
        end_device.EndDeviceListResponse(
            href="/edev",
            subscribable=sub.NON_CONDITIONAL,
            all_=total,
            results=len(pg),
            pollRate=ctx.server.poll_rate("EndDeviceList"),
            EndDevice=[
                sub.aggregator_doc(ctx) if d is None else end_device_doc(ctx.server, d) for d in pg
            ]
            or None,
        )
    )


def register(ctx: Ctx) -> Reply:
    """POST /edev: in-band registration of the client's own certificate."""
    server = ctx.server
    tree = posted.device_tree(ctx, "EndDevice", legacy=ctx.cfg.legacy_xml)
    req = load(m.EndDeviceIn, tree)
    if req.sFDI is None:
        raise HttpError(400, "EndDevice.sFDI: required")
    if not sfdi_valid(req.sFDI):
        raise HttpError(400, f"EndDevice.sFDI: {req.sFDI} has a wrong check digit")
    lf = posted_lfdi(req.lFDI, "EndDevice.lFDI")
    # A device registers its own certificate; an aggregator also the devices it manages.
    lfdi = lf if ctx.aggregator and lf is not None else ctx.lfdi
    sfdi = sfdi_from_lfdi(lfdi)
    if req.sFDI != sfdi or (lf is not None and lf != lfdi):
        raise HttpError(409, "EndDevice sFDI/lFDI do not match the client certificate")
    dev = server.by_lfdi.get(lfdi)
    if dev is None:
        if any(d.sfdi == sfdi for d in server.devices.values()):
            raise HttpError(409, f"sFDI {sfdi} already registered to another device")
        now = int(ctx.now)
        dev = server.add_device(f"edev-{sfdi}", lfdi, sfdi, None, now, ctx.cfg.legacy_xml)
        dev.last_seen = ctx.now
        dev.device_category = req.deviceCategory
        if lfdi != ctx.lfdi:
            dev.aggregator = ctx.lfdi
        server.announce(dev)
    elif dev.aggregator not in (None, ctx.lfdi) or (dev.aggregator is None and lfdi != ctx.lfdi):
        raise HttpError(409, f"LFDI {lfdi} is registered to another client")
    elif not ctx.cfg.allow_reregistration:
        raise HttpError(409, f"LFDI {lfdi} is already registered as {dev.base}")
    else:
        dev.changed_time = req.changedTime or dev.changed_time
        dev.device_category = req.deviceCategory or dev.device_category
    return Reply(201, location=dev.base)


def get_end_device(ctx: Ctx) -> Reply:
    return ok(end_device_doc(ctx.server, ctx.device()))


def registration(ctx: Ctx) -> Reply:
    dev = ctx.device()
    if dev.pin is None:
        raise HttpError(404)
    return ok(
        end_device.RegistrationResponse(
            href=f"{dev.base}/rg",
            pollRate=ctx.server.poll_rate("Registration"),
            dateTimeRegistered=dev.registered_at,
            pIN=dev.pin,
        )
    )


def get_connection_point(ctx: Ctx) -> Reply:
    doc = ctx.device().docs.get("/cp")
    if doc is None:
        raise HttpError(404)
    return Reply(200, doc)


def put_connection_point(ctx: Ctx) -> Reply:
    """CSIP-AUS ConnectionPoint: where the device is connected (its NMI)."""
    dev = ctx.device()
    tree = parse_tree(ctx.body, ctx.cfg.max_body_bytes, namespaces=m.CSIPAUS_NAMESPACES)
    if root_name(tree) != "ConnectionPoint":
        raise XmlError(f"expected a ConnectionPoint document, got {root_name(tree)}")
    ns = etree.QName(tree).namespace
    ids = [el for el in tree if isinstance(el.tag, str)]
    names = [etree.QName(el).localname for el in ids]
    if names != ["connectionPointId"] or any(etree.QName(el).namespace != ns for el in ids):
        raise XmlValueError("ConnectionPoint: expected exactly one connectionPointId")
    cp = (ids[0].text or "").strip()
    if len(cp) > 32 or not nmi_valid(cp):
        raise XmlValueError(f"ConnectionPoint.connectionPointId: {cp[:40]!r} is not a valid NMI")
    tree.set("href", f"{dev.base}/cp")
    dev.docs["/cp"] = etree.tostring(tree)
    return Reply(201, location=f"{dev.base}/cp")


ROUTES = [("/edev", {"GET": edev_list, "POST": register}, False)]
DEVICE_ROUTES = [
    ("", {"GET": get_end_device}),
    ("/rg", {"GET": registration}),
    ("/cp", {"GET": get_connection_point, "PUT": put_connection_point,
             "POST": put_connection_point}),
]  # fmt: skip
