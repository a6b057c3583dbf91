"""Parse 2030.5 XML safely; render it strictly. No I/O.

Safety: no DTDs at all (so no entity expansion, billion laughs or external entities), no
network, a size limit, no huge-tree mode. Strict by default: the namespace must be
`urn:ieee:std:2030.5:ns` (edge/bridge/schema.py checks the rest). Only with `legacy=True` (the
site file's `legacy_xml`) is the pre-standard `http://zigbee.org/sep` namespace (or none)
rewritten, and the pre-standard element names of the original's fixtures renamed to their 2018
equivalents.
"""

from __future__ import annotations

from typing import Any, TypeVar

from lxml import etree
from pydantic import ValidationError
from pydantic_xml import BaseXmlModel
from pydantic_xml.errors import ParsingError

from edge.bridge.models import LEGACY_NS, NS

MAX_XML_BYTES = 64 * 1024

M = TypeVar("M", bound=BaseXmlModel)

# Pre-standard (SEP 2.0 / zigbee) names -> IEEE 2030.5-2018, per root element.
LEGACY_RENAMES: dict[str, dict[str, str | None]] = {
    "DERCapability": {
        "rtgA": "rtgMaxA",
        "rtgAh": "rtgMaxAh",
        "rtgMaxChargeRate": "rtgMaxChargeRateW",
        "rtgMaxDischargeRate": "rtgMaxDischargeRateW",
        "rtgVA": "rtgMaxVA",
        "rtgVar": "rtgMaxVar",
        "rtgW": "rtgMaxW",
        "rtgWh": "rtgMaxWh",
        "rtgMinPF": None,  # different type in 2018 (PowerFactor); dropped
    },
    "DERSettings": {
        "setMaxChargeRate": "setMaxChargeRateW",
        "setMaxDischargeRate": "setMaxDischargeRateW",
        "setStorConnect": None,  # no 2018 equivalent
    },
}


class XmlError(ValueError):
    """A document we refuse; the message names the element or the reason (goes into a 400)."""

    reason = 0  # 2030.5 Error reasonCode: 0 invalid request format


class XmlValueError(XmlError):
    """Well-formed, but a value is not allowed (missing, out of range, not defined)."""

    reason = 1  # invalid request values


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_tree(
    data: bytes,
    limit: int = MAX_XML_BYTES,
    legacy: bool = False,
    namespaces: tuple[str, ...] = (NS,),
) -> etree._Element:
    """Bytes -> element tree; `legacy` rewrites pre-standard documents. Raises XmlError."""
    if len(data) > limit:
        raise XmlError(f"document is {len(data)} bytes, over the {limit}-byte limit")
    head = data.lower()
    if b"<!doctype" in head or b"<!entity" in head:
        raise XmlError("DTDs and entity declarations are not accepted")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"not well-formed XML: {exc}") from None
    if root is None:
        raise XmlError("empty document")
    info = root.getroottree().docinfo
    if info.internalDTD is not None or info.doctype or info.system_url or info.public_id:
        # The byte check above misses a DTD in UTF-16/UTF-32 text; lxml reports it here.
        raise XmlError("DTDs and entity declarations are not accepted")
    if legacy:
        _normalise(root)
    elif etree.QName(root).namespace not in namespaces:
        raise XmlError(
            f"{etree.QName(root).localname}: namespace {etree.QName(root).namespace!r}, "
            f"expected {NS!r} (pre-standard documents need legacy_xml = true)"
        )
    return root


def _normalise(root: etree._Element) -> None:
    renames = LEGACY_RENAMES.get(etree.QName(root).localname, {})
    for el in list(root.iter()):
        if not isinstance(el.tag, str):
            continue
        q = etree.QName(el)
        if q.namespace in (None, LEGACY_NS):
            el.tag = f"{{{NS}}}{q.localname}"
        if el.getparent() is root and q.localname in renames:
            new = renames[q.localname]
            if new is None:
                root.remove(el)
            else:
                el.tag = f"{{{NS}}}{new}"
    etree.cleanup_namespaces(root)


def root_name(root: etree._Element) -> str:
    return str(etree.QName(root).localname)


def load(model: type[M], root: etree._Element) -> M:
    """Tree -> model. Raises XmlError naming the field and the reason."""
    try:
        return model.from_xml_tree(root)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise XmlError(f"{root_name(root)}.{where}: {first.get('msg')}") from None
    except (ParsingError, ValueError, TypeError) as exc:
        raise XmlError(f"{root_name(root)}: {exc}") from None


def try_load(model: type[M], root: etree._Element) -> M | None:
    try:
        return load(model, root)
    except XmlError:
        return None


def parse(model: type[M], data: bytes, legacy: bool = False) -> M:
    return load(model, parse_tree(data, legacy=legacy))


def render(obj: BaseXmlModel) -> bytes:
    """Model -> bytes, schema order, no empty optional elements."""
    out: Any = obj.to_xml(exclude_none=True, skip_empty=True)
    return out if isinstance(out, bytes) else str(out).encode()
