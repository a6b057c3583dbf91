"""Safe parsing, strict by default, tolerant only with legacy_xml; strict emission."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from edge.bridge import models as m
from edge.bridge.xmlcodec import MAX_XML_BYTES, XmlError, parse, parse_tree, render, root_name
from tests.unit.test_bridge_xsd import assert_valid

FIXTURES = Path("/work/shared/fixtures/volttron-2030_5")
NS = m.NS


def test_legacy_namespace_and_names_are_rewritten() -> None:
    doc = (
        b'<DERCapability xmlns="http://zigbee.org/sep"><modesSupported>01</modesSupported>'
        b"<rtgW><multiplier>3</multiplier><value>5</value></rtgW><rtgAh><multiplier>0</multiplier>"
        b"<value>100</value></rtgAh><rtgMinPF><multiplier>0</multiplier><value>1</value></rtgMinPF>"
        b"<type>83</type></DERCapability>"
    )
    with pytest.raises(XmlError, match="legacy_xml"):
        parse_tree(doc)  # strict by default
    tree = parse_tree(doc, legacy=True)
    assert tree.tag == f"{{{NS}}}DERCapability"
    assert all(etree.QName(el).namespace == NS for el in tree.iter())
    cap = parse(m.DERCapabilityIn, doc, legacy=True)
    assert cap.rtgMaxW is not None and (cap.rtgMaxW.multiplier, cap.rtgMaxW.value) == (3, 5)
    assert cap.rtgMaxAh is not None and cap.rtgMaxAh.value == 100
    assert tree.find(f"{{{NS}}}rtgMinPF") is None  # no 2018 equivalent of this type


def test_no_namespace_only_with_legacy_xml() -> None:
    doc = b"<DeviceStatus><changedTime>5</changedTime></DeviceStatus>"
    with pytest.raises(XmlError, match="namespace"):
        parse(m.DeviceStatus, doc)
    assert parse(m.DeviceStatus, doc, legacy=True).changedTime == 5


def test_any_element_order_is_accepted() -> None:
    children = [
        "<readingTime>9</readingTime>",
        "<availabilityDuration>60</availabilityDuration>",
        "<maxChargeDuration>3</maxChargeDuration>",
        "<statWAvail><value>7</value><multiplier>2</multiplier></statWAvail>",
    ]
    for seed in range(5):
        random.Random(seed).shuffle(children)
        doc = f'<DERAvailability xmlns="{NS}">{"".join(children)}</DERAvailability>'.encode()
        av = parse(m.DERAvailabilityIn, doc)
        assert (av.readingTime, av.availabilityDuration, av.maxChargeDuration) == (9, 60, 3)
        assert av.statWAvail is not None and (av.statWAvail.multiplier, av.statWAvail.value) == (
            2,
            7,
        )
        # emitted strictly in schema order whatever the input order was
        out = render(parse(m.DERAvailabilityOut, doc))
        names = [etree.QName(e).localname for e in etree.fromstring(out)]
        assert names == ["availabilityDuration", "maxChargeDuration", "readingTime", "statWAvail"]
        assert_valid(out)


@pytest.mark.skipif(not FIXTURES.exists(), reason="fixtures not on this machine")
@pytest.mark.parametrize(
    "name", sorted(p.name for p in FIXTURES.glob("*.xml")) if FIXTURES.exists() else []
)
def test_every_original_fixture_parses(name: str) -> None:
    with pytest.raises(XmlError, match="namespace"):
        parse_tree((FIXTURES / name).read_bytes())  # pre-standard: refused unless legacy_xml
    tree = parse_tree((FIXTURES / name).read_bytes(), legacy=True)
    assert root_name(tree) in {
        "DERAvailability", "DERCapability", "DERSettings", "DERStatus", "DeviceInformation",
        "DeviceStatus", "PowerStatus", "MirrorMeterReading", "MirrorUsagePoint",
    }  # fmt: skip


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<DeviceStatus xmlns="urn:ieee:std:2030.5:ns"><changedTime>&lol3;</changedTime></DeviceStatus>"""

XXE = b"""<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<DeviceInformation xmlns="urn:ieee:std:2030.5:ns"><mfModel>&x;</mfModel></DeviceInformation>"""


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        (BILLION_LAUGHS, "DTD"),
        (XXE, "DTD"),
        (b"<DeviceStatus", "well-formed"),
        (b"", "well-formed|empty"),
        (b"<a>" + b"x" * MAX_XML_BYTES + b"</a>", "limit"),
        (b"\xff\xfe<garbage", "well-formed"),
    ],
)
def test_hostile_or_broken_documents_are_refused(doc: bytes, match: str) -> None:
    with pytest.raises(XmlError, match=match):
        parse_tree(doc)


def test_type_errors_name_the_field() -> None:
    with pytest.raises(XmlError, match="changedTime"):
        parse(
            m.DeviceStatus,
            f'<DeviceStatus xmlns="{NS}"><changedTime>soon</changedTime></DeviceStatus>'.encode(),
        )
    with pytest.raises(XmlError, match="root element"):
        parse(m.DeviceStatus, f'<PowerStatus xmlns="{NS}"/>'.encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
def test_fuzz_parser_only_raises_xmlerror(data: bytes) -> None:
    with contextlib.suppress(XmlError):  # anything else (or a crash) fails the test
        parse_tree(data)


ELEMENTS = ["DERSettings", "DERStatus", "setMaxW", "value", "multiplier", "readingTime", "x"]


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.sampled_from(["", "1", "-5", "abc", "99999999999999999999"]),
        lambda kids: st.builds(
            lambda tag, inner: f"<{tag}>{''.join(inner)}</{tag}>",
            st.sampled_from(ELEMENTS),
            st.lists(kids, max_size=3),
        ),
        max_leaves=8,
    )
)
def test_fuzz_core_answers_every_document(doc: str) -> None:
    """Whatever the body, the server answers with a status code; it never raises."""
    from tests.unit.test_bridge_core import A, make

    core, _, _ = make()
    for path in ("/edev/1/der/1/derg", "/edev/1/der/1/ders", "/mup", "/edev/1/rsp", "/edev"):
        r = core.handle("POST", path, {}, doc.encode(), A)
        assert r.status in (201, 204, 400, 404, 405, 409), (path, r.status)
