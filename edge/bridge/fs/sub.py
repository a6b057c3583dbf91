"""Subscription / Notification: a device asks to be told when a resource changes.

Subscribable here: the device's FunctionSetAssignments list, DERProgram list, a DERProgram, its
DERControl list and its DefaultDERControl. `scan()` compares what each subscribed resource
looks like now (a cheap key: event versions and statuses, defaults, programs) with what was last
notified, and queues a Notification for each change in `Server.outbox`; the service POSTs them
(edge/bridge/notify.py). No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from envoy_schema.server.schema.sep2.pub_sub import Subscription as SubscriptionDoc
from envoy_schema.server.schema.sep2.pub_sub import SubscriptionListResponse
from lxml import etree

from edge.bridge import models as m
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
SUBSCRIBABLE = re.compile(r"/fsa|/derp|/derp/(\d+)(/derc|/dderc)?")
STATUS_DEFAULT = 0  # Notification status: default (the resource changed)


def _allowed(dev: Device, resource: str) -> str | None:
    """The path under the device if `resource` is one of its subscribable resources."""
    if not resource.startswith(dev.base + "/"):
        return None
    sub = resource[len(dev.base) :]
    return sub if SUBSCRIBABLE.fullmatch(sub) else None


def post(ctx: Ctx) -> Reply:
    dev, server = ctx.device(), ctx.server
    tree = device_tree(ctx, "Subscription")
    doc = load(SubscriptionDoc, tree)
    if _allowed(dev, doc.subscribedResource) is None:
        raise XmlValueError(
            f"Subscription.subscribedResource: {doc.subscribedResource[:80]!r} is not one of "
            f"your subscribable resources ({dev.base}/fsa, /derp, /derp/{{p}}, .../derc, .../dderc)"
        )
    if not doc.notificationURI.startswith("https://"):
        raise XmlValueError("Subscription.notificationURI: notifications go over TLS (https://)")
    mine = [s for s in server.subscriptions.values() if s.owner == dev.eid]
    if len(mine) >= MAX_PER_DEVICE:
        raise HttpError(400, f"Subscription: at most {MAX_PER_DEVICE} per device")
    # -- commit
    sid = server.next_sub
    server.next_sub += 1
    doc.href = f"{dev.base}/sub/{sid}"
    sub = Subscription(sid, dev.eid, doc.subscribedResource, doc.notificationURI,
                       max(1, min(doc.limit, 255)), doc)  # fmt: skip
    sub.key = resource_key(server, dev, sub, ctx.now)
    server.subscriptions[sid] = sub
    return Reply(201, location=doc.href)


def _own(ctx: Ctx) -> Subscription:
    sub = ctx.server.subscriptions.get(int(ctx.groups[0]))
    if sub is None or sub.owner != ctx.device().eid:
        raise HttpError(404)
    return sub


def get_one(ctx: Ctx) -> Reply:
    return ok(_own(ctx).doc)


def delete(ctx: Ctx) -> Reply:
    del ctx.server.subscriptions[_own(ctx).sid]
    return Reply(204)


def subscription_list(ctx: Ctx) -> Reply:
    dev = ctx.device()
    mine = [s for s in ctx.server.subscriptions.values() if s.owner == dev.eid]
    pg, total = page(mine, ctx.query)
    return ok(
        SubscriptionListResponse(
            href=f"{dev.base}/sub",
            all_=total,
            results=len(pg),
            subscriptions=[s.doc for s in pg] or None,
        )
    )


# -- change detection ---------------------------------------------------------------------------


def resource_key(server: Server, dev: Device, sub: Subscription, now: float) -> Any:
    """What the subscribed resource looks like, cheaply: equal keys, equal documents."""
    path = _allowed(dev, sub.resource) or ""
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
    render: Callable[[Device, str, int], bytes | None],
    only: int | None = None,
) -> int:
    """Queue a Notification for every subscribed resource that changed; returns how many.

    `render(dev, path, limit)` gives the resource's current document (the core's GET);
    `only` limits the scan to one device's subscriptions (after a change to that device)."""
    n = 0
    for sub in list(server.subscriptions.values()):
        if only is not None and sub.owner != only:
            continue
        dev = server.devices.get(sub.owner)
        if dev is None:
            del server.subscriptions[sub.sid]  # its device is gone
            continue
        key = resource_key(server, dev, sub, now)
        if key == sub.key:
            continue
        sub.key = key
        body = render(dev, sub.resource, sub.limit)
        if body is None:
            continue
        server.outbox.append(
            Notification(sub.notification_uri, notification(sub, body), sub.doc.href)
        )
        n += 1
    return n


def notification(sub: Subscription, resource: bytes) -> bytes:
    """A Notification carrying the resource as `<Resource xsi:type="...">`."""
    res = etree.fromstring(resource)
    kind = etree.QName(res).localname
    res.tag = f"{{{m.NS}}}Resource"
    res.set(f"{{{XSI}}}type", kind)
    root = etree.Element(f"{{{m.NS}}}Notification", nsmap={None: m.NS, "xsi": XSI})
    etree.SubElement(root, f"{{{m.NS}}}subscribedResource").text = sub.resource
    root.append(res)
    etree.SubElement(root, f"{{{m.NS}}}status").text = str(STATUS_DEFAULT)
    etree.SubElement(root, f"{{{m.NS}}}subscriptionURI").text = sub.doc.href
    return bytes(etree.tostring(root))


DEVICE_ROUTES = [
    ("/sub", {"GET": subscription_list, "POST": post}),
    (r"/sub/(\d+)", {"GET": get_one, "DELETE": delete}),
]
