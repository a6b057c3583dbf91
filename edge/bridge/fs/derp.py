"""FunctionSetAssignments, DERProgram, DERControl, DefaultDERControl: what a device must do.

One DERProgram per primacy. Events come from edge.bridge.controls; `currentStatus` is computed
when the device reads them.
"""

from __future__ import annotations

from typing import Any

from envoy_schema.server.schema.sep2 import der, event, function_set_assignments
from envoy_schema.server.schema.sep2.der_control_types import ActivePower, ReactivePower
from envoy_schema.server.schema.sep2.identification import Link, ListLink
from envoy_schema.server.schema.sep2.types import DateTimeIntervalType
from lxml import etree

from edge.bridge import models as m
from edge.bridge.controls import DOE_KEYS, Control, scaled
from edge.bridge.fs.sub import NON_CONDITIONAL
from edge.bridge.state import RENDER_CACHE, Ctx, Device, HttpError, Reply, ok, page
from edge.bridge.xmlcodec import render


def primacies(ctx: Ctx, dev: Device) -> list[int]:
    return sorted(dev.schedule.primacies() | {ctx.cfg.primacy} | dev.programs | set(dev.defaults))


def current_program(ctx: Ctx, dev: Device) -> int | None:
    for p in primacies(ctx, dev):  # lowest primacy value wins
        if dev.schedule.active(p, ctx.now):
            return p
    return None


def fsa_ids(dev: Device) -> list[int]:
    return sorted({1, *dev.fsa_of.values()})


def fsa_programs(ctx: Ctx, dev: Device, k: int) -> list[int]:
    """The programs an FSA groups: those assigned to it (FSA 1: all not assigned elsewhere)."""
    return [p for p in primacies(ctx, dev) if dev.fsa_of.get(p, 1) == k]


def fsa_doc(
    ctx: Ctx, dev: Device, k: int = 1
) -> function_set_assignments.FunctionSetAssignmentsResponse:
    return function_set_assignments.FunctionSetAssignmentsResponse(
        href=f"{dev.base}/fsa/{k}",
        mRID=ctx.server.mrid(dev.lfdi, "fsa", k),
        description=f"DER programs {k}",
        DERProgramListLink=ListLink(
            href=f"{dev.base}/fsa/{k}/derp", all_=len(fsa_programs(ctx, dev, k))
        ),
        TimeLink=Link(href="/tm"),
    )


def fsa_list(ctx: Ctx) -> Reply:
    dev = ctx.device()
    pg, total = page(fsa_ids(dev), ctx.query)
    return ok(
        function_set_assignments.FunctionSetAssignmentsListResponse(
            href=f"{dev.base}/fsa",
            subscribable=NON_CONDITIONAL,
            all_=total,
            results=len(pg),
            pollRate=ctx.server.poll_rate("FunctionSetAssignmentsList"),
            FunctionSetAssignments=[fsa_doc(ctx, dev, k) for k in pg] or None,
        )
    )


def _fsa(ctx: Ctx) -> int:
    k = int(ctx.groups[0])
    if k not in fsa_ids(ctx.device()):
        raise HttpError(404)
    return k


def fsa(ctx: Ctx) -> Reply:
    return ok(fsa_doc(ctx, ctx.device(), _fsa(ctx)))


def program_doc(ctx: Ctx, dev: Device, p: int) -> der.DERProgramResponse:
    b = f"{dev.base}/derp/{p}"
    return der.DERProgramResponse(
        href=b,
        subscribable=NON_CONDITIONAL,
        mRID=ctx.server.mrid(dev.lfdi, "derp", p),
        description=f"primacy {p}",
        ActiveDERControlListLink=ListLink(
            href=f"{b}/actderc", all_=len(dev.schedule.active(p, ctx.now))
        ),
        DefaultDERControlLink=Link(href=f"{b}/dderc"),
        DERControlListLink=ListLink(href=f"{b}/derc", all_=len(dev.schedule.listed(p, ctx.now))),
        primacy=p,
    )


def program_list(ctx: Ctx) -> Reply:
    """All the device's programs (/derp), or one FSA's (/fsa/{k}/derp)."""
    dev = ctx.device()
    if ctx.groups:
        k = _fsa(ctx)
        items, href = fsa_programs(ctx, dev, k), f"{dev.base}/fsa/{k}/derp"
    else:
        items, href = primacies(ctx, dev), f"{dev.base}/derp"
    ppg, total = page(items, ctx.query)
    return ok(
        der.DERProgramListResponse(
            href=href,
            subscribable=NON_CONDITIONAL,
            all_=total,
            results=len(ppg),
            pollRate=ctx.server.poll_rate("DERProgramList"),
            DERProgram=[program_doc(ctx, dev, p) for p in ppg] or None,
        )
    )


def _primacy(ctx: Ctx) -> int:
    p = int(ctx.groups[0])
    if p not in primacies(ctx, ctx.device()):
        raise HttpError(404)
    return p


def program(ctx: Ctx) -> Reply:
    return ok(program_doc(ctx, ctx.device(), _primacy(ctx)))


def base_out(base: dict[str, Any]) -> der.DERControlBase:
    kw: dict[str, Any] = {}
    for k, v in base.items():
        if k == "setGradW":
            continue  # a DefaultDERControl field, not DERControlBase
        if k == "opModTargetW" or k in DOE_KEYS:
            mult, val = scaled(v)
            kw[k] = ActivePower(multiplier=mult, value=val)
        elif k == "opModTargetVar":
            mult, val = scaled(v)
            kw[k] = ReactivePower(multiplier=mult, value=val)
        else:
            kw[k] = v
    return der.DERControlBase(**kw)


def control_doc(dev: Device, c: Control, now: float) -> der.DERControlResponse:
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
            currentStatus=status, dateTime=c.status_time(now), potentiallySuperseded=False
        ),
        interval=DateTimeIntervalType(duration=c.duration, start=c.start),
        randomizeDuration=c.randomize_duration,
        randomizeStart=c.randomize_start,
        DERControlBase_=base_out(c.base),
    )


def control_list(ctx: Ctx) -> Reply:
    """derc (all events of the program still in their period) or actderc (the active ones)."""
    dev, p, now = ctx.device(), _primacy(ctx), ctx.now
    kind = ctx.groups[1]
    items = dev.schedule.listed(p, now) if kind == "derc" else dev.schedule.active(p, now)
    pg, total = page(items, ctx.query, lambda c: c.start)
    href = f"{dev.base}/derp/{p}/{kind}"
    # The polling path: a document depends only on each event's version and status, so
    # identical polls reuse the rendered bytes (rendering is ~1 ms per list).
    key = (href, total, tuple((c.mrid, c.version, c.status(now)) for c in pg))
    body = dev.rendered.get(key)
    if body is None:
        body = render(
            der.DERControlListResponse(
                href=href,
                subscribable=NON_CONDITIONAL if kind == "derc" else None,
                all_=total,
                results=len(pg),
                DERControl=[control_doc(dev, c, now) for c in pg] or None,
            )
        )
        if len(dev.rendered) >= RENDER_CACHE:
            dev.rendered.clear()
        dev.rendered[key] = body
    return Reply(200, body)


def control(ctx: Ctx) -> Reply:
    dev, p = ctx.device(), _primacy(ctx)
    c = dev.schedule.get(ctx.groups[1])
    if c is None or c.primacy != p or c.status(ctx.now) is None:
        raise HttpError(404)
    return ok(control_doc(dev, c, ctx.now))


def default_control(ctx: Ctx) -> Reply:
    dev, p = ctx.device(), _primacy(ctx)
    base = dev.defaults.get(p, ctx.server.default_base)
    body = render(
        der.DefaultDERControl(
            href=f"{dev.base}/derp/{p}/dderc",
            subscribable=NON_CONDITIONAL,
            mRID=ctx.server.mrid(dev.lfdi, "dderc", p, dev.dderc_seq),
            description="used when no control is active",
            DERControlBase_=base_out(base),
            setGradW=base.get("setGradW"),
        )
    )
    return Reply(200, _ensure_base(body))


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


DEVICE_ROUTES = [
    ("/fsa", {"GET": fsa_list}),
    (r"/fsa/(\d+)", {"GET": fsa}),
    (r"/fsa/(\d+)/derp", {"GET": program_list}),
    ("/derp", {"GET": program_list}),
    (r"/derp/(\d+)", {"GET": program}),
    (r"/derp/(\d+)/(derc|actderc)", {"GET": control_list}),
    (r"/derp/(\d+)/derc/([0-9A-Fa-f]{1,32})", {"GET": control}),
    (r"/derp/(\d+)/dderc", {"GET": default_control}),
]
