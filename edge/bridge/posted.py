"""Device-posted resources, each declared once: path, root element, model, points, state.

A device PUTs (or POSTs) these documents; the bridge checks each completely, maps it to points,
keeps what it needs (ratings, limits), and serves the document back as sent. One generic
handler does this for all of them, so a refused document can never change anything stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lxml import etree

from edge.bridge import mapping, schema
from edge.bridge import models as m
from edge.bridge.state import Ctx, Device, HttpError, Reply
from edge.bridge.xmlcodec import XmlError, load, parse_tree, root_name


@dataclass(frozen=True)
class Posted:
    path: str  # under /edev/{n}
    root: str  # root element
    link: str  # the link element that points at it
    model: type[Any]  # inbound model (pydantic-xml)
    points: Callable[[Any], dict[str, Any]]  # document -> point values
    keep: Callable[[Device, Any], dict[str, Any]] | None = None  # -> Device fields to set
    derived: bool = False  # WMax / DCWh depend on it


def _none(_: Any) -> dict[str, Any]:
    return {}


def _ratings(dev: Device, cap: m.DERCapabilityIn) -> dict[str, Any]:
    w = mapping.uv(cap.rtgMaxW)
    return {} if w is None else {"wrtg": w}


def _limits(dev: Device, st: m.DERSettingsIn) -> dict[str, Any]:
    return {
        "settings": st,
        "set_max_charge_w": mapping.uv(st.setMaxChargeRateW),
        "set_max_w": mapping.uv(st.setMaxW),
    }


def _availability(dev: Device, av: m.DERAvailabilityIn) -> dict[str, Any]:
    return {"availability_s": av.availabilityDuration}


POSTED: tuple[Posted, ...] = (
    Posted("/di", "DeviceInformation", "DeviceInformationLink", m.DeviceInformation,
           mapping.device_information),
    Posted("/dstat", "DeviceStatus", "DeviceStatusLink", m.DeviceStatus, _none),
    Posted("/ps", "PowerStatus", "PowerStatusLink", m.PowerStatus, mapping.power_status),
    Posted("/der/1/dercap", "DERCapability", "DERCapabilityLink", m.DERCapabilityIn,
           mapping.der_capability, _ratings, derived=True),
    Posted("/der/1/derg", "DERSettings", "DERSettingsLink", m.DERSettingsIn, _none, _limits,
           derived=True),
    Posted("/der/1/ders", "DERStatus", "DERStatusLink", m.DERStatusIn, mapping.der_status),
    Posted("/der/1/dera", "DERAvailability", "DERAvailabilityLink", m.DERAvailabilityIn, _none,
           _availability, derived=True),
)  # fmt: skip
BY_PATH = {p.path: p for p in POSTED}


def device_tree(ctx: Ctx, *roots: str, legacy: bool = False) -> etree._Element:
    """Parse and check a device document: strict unless `legacy` (then only tolerant)."""
    tree = parse_tree(ctx.body, ctx.cfg.max_body_bytes, legacy)
    name = root_name(tree)
    if name not in roots:
        raise XmlError(f"expected a {' or '.join(roots)} document, got {name}")
    if not legacy:
        schema.check(tree)
    return tree


def strictly_valid(tree: etree._Element) -> bool:
    try:
        schema.check(tree)
    except XmlError:
        return False
    return True


def get(ctx: Ctx) -> Reply:
    doc = ctx.device().docs.get(ctx.path)
    if doc is None:
        raise HttpError(404)
    return Reply(200, doc)


def put(ctx: Ctx) -> Reply:
    """Check the whole document, then store it; a refused document changes nothing."""
    dev = ctx.device()
    res = BY_PATH[ctx.path]
    tree = device_tree(ctx, res.root, legacy=dev.legacy_xml)
    # A legacy document is tolerated and mapped; it is served back, and trusted for limits,
    # only if it is valid as well.
    valid = not dev.legacy_xml or strictly_valid(tree)
    doc = load(res.model, tree)
    values = res.points(doc)
    changes = res.keep(dev, doc) if res.keep is not None and valid else {}
    # -- commit: nothing above stored anything
    for k, v in changes.items():
        setattr(dev, k, v)
    if res.derived:
        values.update(dev.derived())
    if valid:
        tree.set("href", f"{dev.base}{res.path}")
        dev.docs[res.path] = etree.tostring(tree)
    else:
        dev.docs.pop(res.path, None)
    if values:
        ctx.server.sink.points(dev, values)
    return Reply(204)
