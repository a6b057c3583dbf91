"""Response: what a device says about the DERControls it received (their `replyTo`)."""

from __future__ import annotations

from envoy_schema.server.schema.sep2.response import Response as ResponseOut
from envoy_schema.server.schema.sep2.response import ResponseType

from edge.bridge import models as m
from edge.bridge.posted import device_tree
from edge.bridge.state import RESPONSE_HISTORY, Ctx, Device, HttpError, Reply, ok, page, posted_lfdi
from edge.bridge.xmlcodec import load

RESPONSE_TYPES = frozenset(t.value for t in ResponseType)


def _out(dev: Device, r: m.ResponseIn) -> ResponseOut:
    return ResponseOut(
        href=r.href,
        createdDateTime=r.createdDateTime,
        endDeviceLFDI=dev.lfdi.upper(),
        status=None if r.status is None else ResponseType(r.status),
        subject=r.subject or "",
    )


def post(ctx: Ctx) -> Reply:
    dev = ctx.device()
    tree = device_tree(ctx, "Response", "DERControlResponse", legacy=dev.legacy_xml)
    tree.tag = f"{{{m.NS}}}Response"
    r = load(m.ResponseIn, tree)
    if r.subject is None or dev.schedule.get(r.subject) is None:
        raise HttpError(400, f"Response.subject {r.subject!r} is not one of your controls")
    lfdi = posted_lfdi(r.endDeviceLFDI, "Response.endDeviceLFDI")
    if lfdi is not None and lfdi != dev.lfdi:
        raise HttpError(400, "Response.endDeviceLFDI is not your certificate's LFDI")
    if r.status is None or r.status not in RESPONSE_TYPES:
        raise HttpError(400, f"Response.status {r.status!r}: not a 2030.5 ResponseType")
    # -- commit
    dev.response_seq += 1
    r.href = f"{dev.base}/rsp/{dev.response_seq}"
    r.subject = r.subject.upper()
    r.createdDateTime = r.createdDateTime if r.createdDateTime is not None else int(ctx.now)
    dev.responses.append(r)
    del dev.responses[:-RESPONSE_HISTORY]
    body = {"kind": "response", "subject": r.subject, "status": r.status,
            "createdDateTime": r.createdDateTime}  # fmt: skip
    ctx.server.sink.event(dev, body)
    return Reply(201, location=r.href)


def response_list(ctx: Ctx) -> Reply:
    dev = ctx.device()
    rpg, total = page(dev.responses, ctx.query, lambda r: r.createdDateTime or 0)
    return ok(
        m.ResponseList(
            href=f"{dev.base}/rsp",
            all_=total,
            results=len(rpg),
            Response_=[_out(dev, r) for r in rpg] or None,
        )
    )


def response(ctx: Ctx) -> Reply:
    dev = ctx.device()
    href = f"{dev.base}/rsp/{ctx.groups[0]}"
    r = next((x for x in dev.responses if x.href == href), None)
    if r is None:
        raise HttpError(404)
    return ok(_out(dev, r))


DEVICE_ROUTES = [
    ("/rsp", {"GET": response_list, "POST": post}),
    (r"/rsp/(\d+)", {"GET": response}),
]
