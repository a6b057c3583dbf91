"""DER: the device's DER list and its capability, settings, status and availability."""

from __future__ import annotations

from typing import Any

from envoy_schema.server.schema.sep2 import der
from envoy_schema.server.schema.sep2.identification import Link, ListLink

from edge.bridge import models as m
from edge.bridge import posted
from edge.bridge.fs.derp import current_program, primacies
from edge.bridge.state import Ctx, Device, Reply, ok, page


def der_doc(ctx: Ctx, dev: Device) -> der.DER:
    b = f"{dev.base}/der/1"
    current = current_program(ctx, dev)
    links: dict[str, Any] = {
        p.link: Link(href=f"{dev.base}{p.path}") for p in posted.POSTED if "/der/" in p.path
    }
    return der.DER(
        href=b,
        AssociatedDERProgramListLink=ListLink(
            href=f"{dev.base}/derp", all_=len(primacies(ctx, dev))
        ),
        CurrentDERProgramLink=None if current is None else Link(href=f"{dev.base}/derp/{current}"),
        **links,
    )


def der_list(ctx: Ctx) -> Reply:
    dev = ctx.device()
    pg, total = page([1], ctx.query)
    return ok(
        m.DERList(
            href=f"{dev.base}/der",
            all_=total,
            results=len(pg),
            pollRate=ctx.server.poll_rate("DERList"),
            DER_=[der_doc(ctx, dev) for _ in pg] or None,
        )
    )


def der_one(ctx: Ctx) -> Reply:
    return ok(der_doc(ctx, ctx.device()))


DEVICE_ROUTES = [
    ("/der", {"GET": der_list}),
    ("/der/1", {"GET": der_one}),
]
