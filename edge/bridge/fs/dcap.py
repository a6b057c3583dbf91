"""DeviceCapability and Time: where a client starts, and the server's clock."""

from __future__ import annotations

from envoy_schema.server.schema.sep2.device_capability import DeviceCapabilityResponse
from envoy_schema.server.schema.sep2.identification import Link, ListLink
from envoy_schema.server.schema.sep2.time import TimeResponse

from edge.bridge.state import Ctx, Reply, ok
from edge.bridge.timeres import time_fields


def dcap(ctx: Ctx) -> Reply:
    visible = {d.eid for d in ctx.visible()}
    n_mup = sum(1 for u in ctx.server.mups.values() if u.owner in visible)
    agg = int(ctx.aggregator and ctx.own is None)  # its own EndDevice, /edev/0
    return ok(
        DeviceCapabilityResponse(
            href="/dcap",
            pollRate=ctx.server.poll_rate("DeviceCapability"),
            TimeLink=Link(href="/tm"),
            EndDeviceListLink=ListLink(href="/edev", all_=len(visible) + agg),
            MirrorUsagePointListLink=ListLink(href="/mup", all_=n_mup),
        )
    )


def time(ctx: Ctx) -> Reply:
    tf = time_fields(ctx.now, ctx.cfg.timezone)
    return ok(TimeResponse(href="/tm", **tf.__dict__))


# (path, {method: handler}, caller must be registered)
ROUTES = [
    ("/dcap", {"GET": dcap}, False),
    ("/tm", {"GET": time}, False),
]
