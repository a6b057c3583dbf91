"""Subscription / Notification: a device asks to be told when a resource changes.

Subscribable here: the device's FunctionSetAssignments list, DERProgram list, a DERProgram, its
DERControl list and its DefaultDERControl. `scan()` compares what each subscribed resource
looks like now (a cheap key: event versions and statuses, defaults, programs) with what was last
notified, and queues a Notification for each change in `Server.outbox`; the service POSTs them
(edge/bridge/notify.py). A new subscription is notified once at once with the resource as it is
(the core scans after the POST), so a change between the device's GET and its POST is never
missed. No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from envoy_schema.server.schema.sep2.end_device import EndDeviceResponse
from envoy_schema.server.schema.sep2.identification import ListLink
from envoy_schema.server.schema.sep2.pub_sub import Subscription as SubscriptionDoc
from envoy_schema.server.schema.sep2.pub_sub import SubscriptionListResponse
from envoy_schema.server.schema.sep2.types import SubscribableType
from lxml import etree

from edge.bridge import models as m
from edge.bridge.identity import sfdi_from_lfdi
from edge.bridge.posted import device_tree
from edge.bridge.state import (
    Ctx,
    Device,
    HttpError,
    Notification,
    Reply,
    Server,
    Subscription,
    ok,
    page,
)
from edge.bridge.xmlcodec import XmlValueError, load

XSI = "http://www.w3.org/2001/XMLSchema-instance"
MAX_PER_DEVICE = 16
SUBSCRIBABLE = re.compile(r"/fsa|/fsa/\d+/derp|/derp|/derp/(\d+)(/derc|/dderc)?")
EDEV_LIST = "/edev"  # the EndDeviceList, as the subscriber's certificate sees it
# `subscribable` on every resource a Subscription may name: non-conditional subscriptions
NON_CONDITIONAL = SubscribableType.resource_supports_non_conditional_subscriptions
STATUS_DEFAULT = 0  # Notification status: default (the resource changed)


AGG_EDEV = "/edev/0"  # an aggregator certificate's own EndDevice, when it registered none


def _may_see(server: Server, cert: str, dev: Device) -> bool:
    return dev.lfdi == cert or (cert in server.aggregators and dev.aggregator == cert)


def _target(server: Server, cert: str, resource: str) -> tuple[Device | None, str] | None:
    """(the device whose resource it is, None for the EndDeviceList; the path under it) if the
    certificate may subscribe to `resource`, else None."""
    if resource == EDEV_LIST:
        return None, EDEV_LIST
    mt = re.fullmatch(r"/edev/(\d+)(/.*)", resource)
    if mt is None or not SUBSCRIBABLE.fullmatch(mt.group(2)):
        return None
    dev = server.devices.get(int(mt.group(1)))
    if dev is None or not _may_see(server, cert, dev):
        return None
    return dev, mt.group(2)


def list_base(ctx: Ctx) -> str:
    """Where this request's SubscriptionList lives: an aggregator's subscriptions (for every
    device it manages) are on its own EndDevice, else on the device's."""
    if ctx.dev is None and ctx.aggregator:
        return AGG_EDEV
    dev = ctx.device()
    if dev.aggregator is not None:
        raise HttpError(404)  # a managed device: its aggregator's EndDevice has the list
    return dev.base


def _owner(ctx: Ctx) -> int:
    base = list_base(ctx)
    return 0 if base == AGG_EDEV else int(base.rsplit("/", 1)[1])


def post(ctx: Ctx) -> Reply:
    server, base, owner = ctx.server, list_base(ctx), _owner(ctx)
    tree = device_tree(ctx, "Subscription")
    doc = load(SubscriptionDoc, tree)
    if _target(server, ctx.lfdi, doc.subscribedResource) is None:
        raise XmlValueError(
            f"Subscription.subscribedResource: {doc.subscribedResource[:80]!r} is not one of "
            "your subscribable resources (/edev, /edev/{n}/fsa, .../fsa/{k}/derp, .../derp, "
            ".../derp/{p}, .../derc, .../dderc)"
        )
    if not doc.notificationURI.startswith("https://"):
        raise XmlValueError("Subscription.notificationURI: notifications go over TLS (https://)")
    mine = [s for s in server.subscriptions.values() if (s.owner, s.cert) == (owner, ctx.lfdi)]
    if len(mine) >= MAX_PER_DEVICE:
        raise HttpError(400, f"Subscription: at most {MAX_PER_DEVICE} per device")
    # -- commit
    sid = server.next_sub
    server.next_sub += 1
    doc.href = f"{base}/sub/{sid}"
    sub = Subscription(sid, owner, doc.subscribedResource, doc.notificationURI,
                       max(1, min(doc.limit, 255)), doc, cert=ctx.lfdi)  # fmt: skip
    sub.key = None  # so the first scan sends the resource as it is now (see below)
    server.subscriptions[sid] = sub
    return Reply(201, location=doc.href)


def _mine(ctx: Ctx) -> list[Subscription]:
    owner = _owner(ctx)
    return [s for s in ctx.server.subscriptions.values() if (s.owner, s.cert) == (owner, ctx.lfdi)]


def _own(ctx: Ctx) -> Subscription:
    sid = int(ctx.groups[-1])
    sub = next((s for s in _mine(ctx) if s.sid == sid), None)
    if sub is None:
        raise HttpError(404)
    return sub


def get_one(ctx: Ctx) -> Reply:
    return ok(_own(ctx).doc)


def delete(ctx: Ctx) -> Reply:
    del ctx.server.subscriptions[_own(ctx).sid]
    return Reply(204)


def subscription_list(ctx: Ctx) -> Reply:
    base = list_base(ctx)
    pg, total = page(_mine(ctx), ctx.query)
    return ok(
        SubscriptionListResponse(
            href=f"{base}/sub",
            all_=total,
            results=len(pg),
            subscriptions=[s.doc for s in pg] or None,
        )
    )


def count(server: Server, dev: Device) -> int:
    """Subscriptions in the device's SubscriptionList."""
    return sum(1 for s in server.subscriptions.values() if s.owner == dev.eid)


def aggregator_end_device(ctx: Ctx) -> Reply:
    """GET /edev/0: the aggregator's own EndDevice (it carries the SubscriptionList)."""
    if not ctx.aggregator or ctx.own is not None:
        raise HttpError(404)
    return ok(aggregator_doc(ctx))


def aggregator_doc(ctx: Ctx) -> EndDeviceResponse:
    n = sum(1 for s in ctx.server.subscriptions.values() if (s.owner, s.cert) == (0, ctx.lfdi))
    return EndDeviceResponse(
        href=AGG_EDEV,
        subscribable=SubscribableType.resource_does_not_support_subscriptions,
        lFDI=ctx.lfdi.upper(),
        sFDI=sfdi_from_lfdi(ctx.lfdi),
        changedTime=int(ctx.now),
        enabled=True,
        SubscriptionListLink=ListLink(href=f"{AGG_EDEV}/sub", all_=n),
    )


def _aggregator_only(handler: Callable[[Ctx], Reply]) -> Callable[[Ctx], Reply]:
    def run(ctx: Ctx) -> Reply:
        if not ctx.aggregator or ctx.own is not None:
            raise HttpError(404)
        return handler(ctx)

    return run


# -- change detection ---------------------------------------------------------------------------


def resource_key(server: Server, sub: Subscription, now: float) -> Any:
    """What the subscribed resource looks like, cheaply: equal keys, equal documents."""
    t = _target(server, sub.cert, sub.resource)
    if t is None:
        return None
    dev, path = t
    if dev is None:  # the EndDeviceList: who the certificate sees, and what changed on them
        seen = [d for d in server.devices.values() if _may_see(server, sub.cert, d)]
        return server.poll_rate("EndDeviceList"), tuple((d.eid, d.changed_time) for d in seen)
    progs = tuple(sorted(dev.schedule.primacies() | {server.cfg.primacy} | dev.programs
                         | set(dev.defaults)))  # fmt: skip
    mt = re.fullmatch(r"/derp/(\d+)(/derc|/dderc)?", path)
    if mt is None:  # /fsa, /derp: the programs and their event counts
        return progs, tuple((p, len(dev.schedule.listed(p, now))) for p in progs)
    p, leaf = int(mt.group(1)), mt.group(2)
    if leaf == "/dderc":
        return p, dev.dderc_seq, tuple(sorted(dev.defaults.get(p, server.default_base).items()))
    return p, tuple((c.mrid, c.version, c.status(now)) for c in dev.schedule.listed(p, now))


def scan(
    server: Server,
    now: float,
    render: Callable[[Subscription], bytes | None],
    only: int | None = None,
) -> int:
    """Queue a Notification for every subscribed resource that changed; returns how many.

    `render(sub)` gives the resource's current document (the core's GET, as the subscriber's
    certificate would make it); `only` limits the scan to subscriptions to one device's
    resources (after a change to that device)."""
    n = 0
    for sub in list(server.subscriptions.values()):
        t = _target(server, sub.cert, sub.resource)
        if t is None or (sub.owner and sub.owner not in server.devices):
            del server.subscriptions[sub.sid]  # its device is gone
            continue
        if only is not None and t[0] is not None and t[0].eid != only:
            continue
        key = resource_key(server, sub, now)
        if key == sub.key:
            continue
        sub.key = key
        body = render(sub)
        if body is None:
            continue
        server.outbox.append(
            Notification(
                sub.notification_uri,
                notification(sub, body, server.cfg.base_url),
                sub.doc.href,
            )
        )
        n += 1
    return n


def notification(sub: Subscription, resource: bytes, base_url: str) -> bytes:
    """A Notification carrying the resource as `<Resource xsi:type="...">`; its
    `subscriptionURI` is absolute (`base_url` + the subscription's href), as 2030.5 requires."""
    res = etree.fromstring(resource)
    kind = etree.QName(res).localname
    res.tag = f"{{{m.NS}}}Resource"
    res.set(f"{{{XSI}}}type", kind)
    root = etree.Element(f"{{{m.NS}}}Notification", nsmap={None: m.NS, "xsi": XSI})
    etree.SubElement(root, f"{{{m.NS}}}subscribedResource").text = sub.resource
    root.append(res)
    etree.SubElement(root, f"{{{m.NS}}}status").text = str(STATUS_DEFAULT)
    etree.SubElement(root, f"{{{m.NS}}}subscriptionURI").text = base_url + sub.doc.href
    return bytes(etree.tostring(root))


# (path, methods, registered): the aggregator's EndDevice and its SubscriptionList
ROUTES: list[tuple[str, dict[str, Callable[[Ctx], Reply]], bool]] = [
    (AGG_EDEV, {"GET": aggregator_end_device}, True),
    (f"{AGG_EDEV}/sub", {"GET": _aggregator_only(subscription_list),
                         "POST": _aggregator_only(post)}, True),
    (rf"{AGG_EDEV}/sub/(\d+)", {"GET": _aggregator_only(get_one),
                                "DELETE": _aggregator_only(delete)}, True),
]  # fmt: skip
DEVICE_ROUTES = [
    ("/sub", {"GET": subscription_list, "POST": post}),
    (r"/sub/(\d+)", {"GET": get_one, "DELETE": delete}),
]
