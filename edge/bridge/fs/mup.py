"""Metering mirror: MirrorUsagePoints and the readings a device mirrors into them.

Readings are identified by description (as the original did) and mapped to points. mRIDs are
global: one already used by another device is a conflict and has no effect on that device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edge.bridge import mapping
from edge.bridge import models as m
from edge.bridge.posted import device_tree, strictly_valid
from edge.bridge.state import Ctx, Device, HttpError, Mup, Reply, Server, ok, page, posted_lfdi
from edge.bridge.xmlcodec import load, root_name


def mup_list(ctx: Ctx) -> Reply:
    # before registration the list is empty (/dcap advertises it to every certificate)
    visible = {d.eid for d in ctx.visible()}
    own = [u for u in ctx.server.mups.values() if u.owner in visible and u.doc is not None]
    pg, total = page(own, ctx.query)
    return ok(
        m.MirrorUsagePointList(
            href="/mup",
            all_=total,
            results=len(pg),
            pollRate=ctx.server.poll_rate("MirrorUsagePointList"),
            mirrorUsagePoints=[u.doc for u in pg if u.doc is not None],
        )
    )


def post_mup(ctx: Ctx) -> Reply:
    server = ctx.server
    if not ctx.visible():
        raise HttpError(403, "device not registered")
    legacy = ctx.own.legacy_xml if ctx.own is not None else ctx.cfg.legacy_xml
    tree = device_tree(ctx, "MirrorUsagePoint", legacy=legacy)
    mup_in = load(m.MirrorUsagePointIn, tree)
    owner = posted_lfdi(mup_in.deviceLFDI, "MirrorUsagePoint.deviceLFDI")
    # the usage point belongs to the device it names, which must be the poster's (or one an
    # aggregator manages)
    dev = next((d for d in ctx.visible() if d.lfdi == owner), None) if owner else ctx.own
    if dev is None:
        raise HttpError(403, "MirrorUsagePoint.deviceLFDI is not yours")
    mrid = (mup_in.mRID or "").strip().upper()
    if not mrid:
        raise HttpError(400, "MirrorUsagePoint.mRID: required")
    readings = mup_in.readings or []
    _check_mrids(server, dev, [mrid, *(r.mRID for r in readings)])
    served = None
    if not dev.legacy_xml or strictly_valid(tree):
        served = load(m.MirrorUsagePointOut, tree)
    # -- commit
    mup = next((u for u in server.mups.values() if u.owner == dev.eid and u.mrid == mrid), None)
    if mup is None:
        mup = Mup(server.next_mup, dev.eid, None, mrid)
        server.next_mup += 1
        server.mups[mup.mid] = mup
    server.mrid_owner[mrid] = dev.eid
    if served is not None:
        served.href = f"/mup/{mup.mid}"
        served.mirrorMeterReadings = None  # readings are write-only here
        mup.doc = served
    _readings(server, dev, mup, readings)
    return Reply(201, location=f"/mup/{mup.mid}")


def _own(ctx: Ctx) -> Mup:
    found = ctx.server.mups.get(int(ctx.groups[0]))
    if found is None or found.owner not in {d.eid for d in ctx.visible()}:
        raise HttpError(404)  # another device's usage point does not exist for this one
    return found


def get_mup(ctx: Ctx) -> Reply:
    found = _own(ctx)
    if found.doc is None:
        raise HttpError(404)
    return ok(found.doc)


def post_readings(ctx: Ctx) -> Reply:
    found = _own(ctx)
    dev = ctx.server.devices[found.owner]
    tree = device_tree(ctx, "MirrorMeterReading", "MirrorMeterReadingList", legacy=dev.legacy_xml)
    if root_name(tree) == "MirrorMeterReading":
        readings = [load(m.MirrorMeterReadingIn, tree)]
    else:
        readings = load(m.MirrorMeterReadingListIn, tree).readings or []
    _check_mrids(ctx.server, dev, [r.mRID for r in readings])
    _readings(ctx.server, dev, found, readings)
    return Reply(201, location=f"/mup/{found.mid}")


def _check_mrids(server: Server, dev: Device, mrids: Sequence[str | None]) -> None:
    """Mirror mRIDs are global: one already used by another device is a conflict (409)."""
    for raw in mrids:
        key = (raw or "").strip().upper()
        owner = server.mrid_owner.get(key)
        if key and owner is not None and owner != dev.eid:
            raise HttpError(409, f"mRID {key} belongs to another device")


def _readings(
    server: Server, dev: Device, mup: Mup, readings: list[m.MirrorMeterReadingIn]
) -> None:
    values: dict[str, Any] = {}
    for r in readings:
        key = (r.mRID or "").strip().upper()
        if key:
            server.mrid_owner[key] = dev.eid
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
        server.sink.points(dev, values)


# (path, {method: handler}, caller must be registered); GET /mup answers before registration
ROUTES = [
    ("/mup", {"GET": mup_list, "POST": post_mup}, False),
    (r"/mup/(\d+)", {"GET": get_mup, "POST": post_readings, "PUT": post_readings}, True),
]
