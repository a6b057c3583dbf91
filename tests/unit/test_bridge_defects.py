"""Issue 12's defects, one test each: every one of these failed on the bridge before the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from edge.bridge import mapping
from edge.bridge.config import BridgeDevice
from edge.bridge.core import BridgeCore
from edge.bridge.identity import sfdi_from_lfdi
from tests.unit.test_bridge_core import NS, SETTINGS, A, B, edev, get, make, mup_doc, tree, x
from tests.unit.test_bridge_xsd import assert_valid

FIXTURES = Path("/work/shared/fixtures/volttron-2030_5")
FIXTURE_LFDI = "247bd68e3378fe57ba604e3c8bdf9e3f78a3d743"  # deviceLFDI of the original's MUPs
CSIPAUS_13 = "https://csipaus.org/ns/v1.3"
CSIPAUS_12 = "https://csipaus.org/ns"


def stored(core: BridgeCore) -> dict[str, Any]:
    """Everything a request could change, as plain data."""
    return {
        "docs": {e: dict(d.docs) for e, d in core.devices.items()},
        "limits": {e: (d.set_max_w, d.set_max_charge_w, d.wrtg) for e, d in core.devices.items()},
        "mups": {k: (u.owner, u.mrid, u.doc, dict(u.readings)) for k, u in core.mups.items()},
        "owners": dict(core.mrid_owner),
        "devices": sorted(d.lfdi for d in core.devices.values()),
    }


def refused(core: BridgeCore, method: str, path: str, body: bytes, lfdi: str = A) -> bytes:
    """The request is refused with a 4xx and changes nothing stored."""
    before = stored(core)
    r = core.handle(method, path, {}, body, lfdi)
    assert 400 <= r.status < 500, (path, r.status, r.body)
    assert stored(core) == before
    if r.body:
        assert_valid(r.body)
    return r.body


# -- MirrorUsagePoint list before registration -----------------------------------------------


def test_mup_list_advertised_before_registration_is_an_empty_list() -> None:
    core, _, _ = make(allow_registration=True)
    dcap = tree(get(core, "/dcap", lfdi=B))
    assert dcap.find(f"{{{NS}}}MirrorUsagePointListLink").get("href") == "/mup"
    lst = tree(get(core, "/mup", lfdi=B))  # was 403
    assert (lst.get("all"), lst.get("results")) == ("0", "0")
    assert core.handle("POST", "/mup", {}, mup_doc("0B", B), B).status == 403  # still not yours


# -- bad DERSettings --------------------------------------------------------------------------


def test_invalid_der_settings_change_nothing() -> None:
    core, rec, _ = make()
    assert core.handle("PUT", "/edev/1/der/1/derg", {}, SETTINGS, A).status == 204
    good = get(core, "/edev/1/der/1/derg").body
    values = dict(rec.values["bat"])
    bad = x(
        "DERSettings",
        "<setGradW>0</setGradW><setMaxW><multiplier>0</multiplier><value>1</value></setMaxW>",
    )  # no updatedTime
    body = refused(core, "PUT", "/edev/1/der/1/derg", bad)
    assert b"updatedTime: required" in body  # the Error names the element
    assert get(core, "/edev/1/der/1/derg").body == good  # was 404
    assert core.devices[1].set_max_w == 6000.0  # was 1 W
    assert rec.values["bat"] == values
    # the limit controls are checked against is still the valid document's
    assert core.set_derc("bat", {"duration": 60, "opModTargetW": 5000})["status"] == 1


# -- strict input -------------------------------------------------------------------------------

CAP = (
    "<modesSupported>{modes}</modesSupported>"
    "<rtgMaxW><multiplier>0</multiplier><value>{w}</value></rtgMaxW><type>{type}</type>"
)


def cap(modes: str = "00000001", w: str = "5000", type_: str = "80") -> bytes:
    return x("DERCapability", CAP.format(modes=modes, w=w, type=type_))


def reading(value: str) -> bytes:
    return x(
        "MirrorMeterReading",
        f"<mRID>0C01</mRID><description>PhasePowerAvg</description><Reading><value>{value}"
        "</value></Reading>",
    )


@pytest.mark.parametrize(
    ("path", "body", "names"),
    [
        ("/edev/1/der/1/dercap", cap(w="32768"), "rtgMaxW.value: 32768 outside"),  # Int16
        ("/edev/1/der/1/dercap", cap(modes="0102030405"), "modesSupported: 5 bytes"),  # HexBin32
        ("/edev/1/der/1/dercap", cap(modes="0x1"), "modesSupported: '0x1' is not hexBinary"),
        ("/edev/1/der/1/dercap", cap(type_="7"), "type: 7 is not a defined value"),  # DERType
        ("/edev/1/der/1/dercap", x("DERCapability", "<type>80</type>"), "modesSupported: required"),
        (
            "/edev/1/der/1/dercap",
            x("DERCapability", "<type>80</type>" + CAP.format(modes="00", w="1", type="80")),
            "out of order",
        ),
        (
            "/edev/1/der/1/derg",
            SETTINGS.replace(b"<setGradW>0<", b"<setGradW>65536<"),
            "setGradW: 65536 outside",
        ),  # UInt16
        (
            "/edev/1/di",
            x(
                "DeviceInformation",
                f"<lFDI>{A}</lFDI><mfDate>1</mfDate><mfHwVer>1</mfHwVer><mfID>1</mfID>"
                f"<mfModel>{'M' * 33}</mfModel><mfSerNum>1</mfSerNum><primaryPower>1</primaryPower>"
                "<secondaryPower>0</secondaryPower><swActTime>1</swActTime><swVer>1</swVer>",
            ),
            "mfModel: 33 characters",
        ),  # String32
        (
            "/edev/1/der/1/ders",
            x(
                "DERStatus",
                "<inverterStatus><dateTime>1</dateTime><value>11</value></inverterStatus>"
                "<readingTime>1</readingTime>",
            ),
            "inverterStatus.value: 11 is not a defined value",
        ),
        (
            "/edev/1/der/1/ders",
            x("DERStatus", "<readingTime>1</readingTime><bogus>1</bogus>"),
            "bogus: not an element",
        ),
        (
            "/edev/1/dstat",
            b"<DeviceStatus><changedTime>1</changedTime></DeviceStatus>",
            "namespace",
        ),  # no namespace
        (
            "/edev/1/dstat",
            b'<DeviceStatus xmlns="http://zigbee.org/sep"><changedTime>1</changedTime>'
            b"</DeviceStatus>",
            "legacy_xml",
        ),
        ("/mup/1", reading(str(2**47 + 1)), "Reading.value: 140737488355329 outside"),  # Int48
        (
            "/edev/1/dstat",
            x("DeviceStatus", f"<changedTime>{'9' * 5000}</changedTime>"),
            "DeviceStatus.changedTime: '99999999999999999999'... outside",
        ),  # too long for int() to parse at all
    ],
)
def test_strict_input_is_400_naming_the_element_and_stores_nothing(
    path: str, body: bytes, names: str
) -> None:
    core, _, _ = make()
    assert core.handle("POST", "/mup", {}, mup_doc("0C"), A).status == 201
    err = refused(core, "PUT" if path != "/mup/1" else "POST", path, body)
    assert etree.fromstring(err).tag == f"{{{NS}}}Error"
    assert names.encode() in err, err


def test_int48_bounds_are_inclusive() -> None:
    core, rec, _ = make()
    assert core.handle("POST", "/mup", {}, mup_doc("0C"), A).status == 201
    assert core.handle("POST", "/mup/1", {}, reading(str(2**47)), A).status == 201
    assert rec.values["bat"]["113/DCW"] == float(2**47)


# -- legacy_xml -----------------------------------------------------------------------------


@pytest.mark.skipif(not FIXTURES.exists(), reason="the original's fixtures are not on this machine")
@pytest.mark.parametrize("where", ["bridge", "device"])
def test_original_fixtures_need_legacy_xml(where: str) -> None:
    legacy = BridgeDevice(
        "old", FIXTURE_LFDI, sfdi_from_lfdi(FIXTURE_LFDI), None, True if where == "device" else None
    )
    strict = BridgeDevice("new", B, sfdi_from_lfdi(B), None, False)
    kw: dict[str, Any] = {"devices": (legacy, strict)}
    if where == "bridge":
        kw["legacy_xml"] = True
    core, rec, _ = make(**kw)
    puts = {
        "der.dera.PUT.xml": "der/1/dera", "der.dercap.PUT.xml": "der/1/dercap",
        "der.derg.PUT.xml": "der/1/derg", "der.ders.PUT.xml": "der/1/ders",
        "edev.di.PUT.xml": "di", "edev.dstat.PUT.xml": "dstat", "edev.ps.PUT.xml": "ps",
    }  # fmt: skip
    for name, sub in puts.items():
        doc = (FIXTURES / name).read_bytes()
        assert core.handle("PUT", f"/edev/1/{sub}", {}, doc, FIXTURE_LFDI).status == 204, name
        assert core.handle("PUT", f"/edev/2/{sub}", {}, doc, B).status == 400, name
    for name in ("mup.mup.PUT.xml", "mup.mup2.PUT.xml"):
        doc = (FIXTURES / name).read_bytes()
        assert core.handle("POST", "/mup", {}, doc, FIXTURE_LFDI).status == 201, name
        assert core.handle("POST", "/mup", {}, doc, B).status in (400, 403), name
    assert (
        core.handle(
            "POST", "/mup/1", {}, (FIXTURES / "mup.mmr.PUT.xml").read_bytes(), FIXTURE_LFDI
        ).status
        == 201
    )
    v = rec.values["old"]
    assert v["802/SoC"] == 7.77
    # 777 is no defined inverterStatus / localControlModeStatus, and no HexBinary8: null
    assert (v["802/State"], v["802/LocRemCtl"], v["122/StorConn"]) == (None, None, None)
    assert (v["120/WRtg"], v["121/WMax"], v["113/A"], v["122/ActWh"]) == (10.0, 20.0, 24.0, 128.0)
    assert core.devices[1].set_max_w == 10.0  # the (valid) legacy DERSettings is trusted
    assert "new" not in rec.values or not set(rec.values["new"]) - {"1/SN"}
    # the invalid legacy DERStatus is mapped but never served back
    assert core.handle("GET", "/edev/1/der/1/ders", {}, b"", FIXTURE_LFDI).status == 404
    assert_valid(core.handle("GET", "/edev/1/der/1/derg", {}, b"", FIXTURE_LFDI).body)


# -- identity in mirror data ----------------------------------------------------------------


def test_mup_for_another_lfdi_is_refused() -> None:
    core, _, _ = make()
    refused(core, "POST", "/mup", mup_doc("0D", B))


def test_mrid_of_another_device_is_refused_and_has_no_effect_on_it() -> None:
    core, rec, _ = make(allow_registration=True)
    assert core.handle("POST", "/edev", {}, edev(B), B).status == 201
    mmr = (
        "<MirrorMeterReading><mRID>0E01</mRID><description>PhasePowerAvg</description>"
        "<Reading><value>5</value></Reading></MirrorMeterReading>"
    )
    assert core.handle("POST", "/mup", {}, mup_doc("0E", A, mmr), A).status == 201
    a_values = dict(rec.values["bat"])
    b_name = f"edev-{sfdi_from_lfdi(B)}"
    refused(core, "POST", "/mup", mup_doc("0E", B), B)  # the usage point's mRID
    refused(core, "POST", "/mup", mup_doc("0F", B, mmr.replace("5<", "9<")), B)  # a reading's
    assert core.handle("POST", "/mup", {}, mup_doc("0F", B), B).status == 201
    refused(core, "POST", "/mup/2", x("MirrorMeterReadingList", mmr), B)
    assert rec.values["bat"] == a_values
    assert "113/DCW" not in rec.values.get(b_name, {})


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/mup", mup_doc("10", A[:-1])),  # 39 digits
        ("/mup", mup_doc("10", "z" * 40)),  # not hex
        ("/edev", edev(B, f"<lFDI>{B[:38]}</lFDI>")),
        (
            "/edev",
            x("EndDevice", f"<sFDI>{sfdi_from_lfdi(B) + 1}</sFDI><changedTime>1</changedTime>"),
        ),
        ("/edev", x("EndDevice", "<sFDI>12A</sFDI><changedTime>1</changedTime>")),
        ("/edev", x("EndDevice", f"<sFDI>{2**48}</sFDI><changedTime>1</changedTime>")),
    ],
)
def test_malformed_lfdi_or_sfdi_is_400(path: str, body: bytes) -> None:
    core, _, _ = make(allow_registration=True)
    lfdi = B if path == "/edev" else A
    before = stored(core)
    r = core.handle("POST", path, {}, body, lfdi)
    assert r.status == 400, (r.status, r.body)
    assert stored(core) == before


def test_well_formed_conflict_stays_409() -> None:
    core, _, _ = make(allow_registration=True)
    assert core.handle("POST", "/edev", {}, edev(A), B).status == 409  # A's SFDI, B's cert


# -- DefaultDERControl ----------------------------------------------------------------------


def test_default_der_control_without_configured_default_is_valid() -> None:
    core, _, _ = make(default_control={})
    r = get(core, "/edev/1/derp/1/dderc")  # get() validates against sep.xsd
    assert tree(r).find(f"{{{NS}}}DERControlBase") is not None


# -- enumerations ---------------------------------------------------------------------------


def _symbols(model: int, point: str) -> dict[str, int]:
    import sunspec2  # pysunspec2: the SunSpec Alliance's model definitions, an independent oracle

    path = Path(sunspec2.__file__).parent / "models" / "json" / f"model_{model}.json"
    group = json.loads(path.read_text())["group"]
    p = next(p for p in group["points"] if p["name"] == point)
    return {s["name"]: s["value"] for s in p.get("symbols", [])}


def test_enumerations_are_translated_to_sunspec_codes() -> None:
    state = _symbols(802, "State")
    assert {v for v in mapping.INVERTER_STATUS_TO_802_STATE.values() if v is not None} <= set(
        state.values()
    )
    assert mapping.INVERTER_STATUS_TO_802_STATE[7] == state["FAULT"]
    assert mapping.INVERTER_STATUS_TO_802_STATE[1] == state["DISCONNECTED"]
    locrem = _symbols(802, "LocRemCtl")
    # 2030.5: 0 local, 1 remote; SunSpec codes them the other way round
    assert {0: locrem["LOCAL"], 1: locrem["REMOTE"]} == mapping.LOCAL_CONTROL_TO_LOCREMCTL
    chast = _symbols(802, "ChaSt")
    assert {
        0: chast["CHARGING"],
        1: chast["DISCHARGING"],
        2: chast["HOLDING"],
    } == mapping.STORAGE_MODE_TO_CHAST
    conn = _symbols(122, "StorConn")
    # 2030.5 ConnectStatusType bits 0..3: connected, available, operating, test
    assert conn == {"CONNECTED": 0, "AVAILABLE": 1, "OPERATING": 2, "TEST": 3}
    assert sum(1 << b for b in conn.values()) == mapping.CONNECT_STATUS_BITS


def test_der_status_topics_carry_sunspec_codes() -> None:
    core, rec, _ = make()
    doc = x(
        "DERStatus",
        "<inverterStatus><dateTime>1</dateTime><value>7</value></inverterStatus>"
        "<localControlModeStatus><dateTime>1</dateTime><value>0</value></localControlModeStatus>"
        "<readingTime>1</readingTime>"
        "<storageModeStatus><dateTime>1</dateTime><value>0</value></storageModeStatus>"
        "<storConnectStatus><dateTime>1</dateTime><value>17</value></storConnectStatus>",
    )
    assert core.handle("PUT", "/edev/1/der/1/ders", {}, doc, A).status == 204
    v = rec.values["bat"]
    assert (v["802/State"], v["802/LocRemCtl"], v["802/ChaSt"], v["122/StorConn"]) == (
        99,
        1,
        4,
        0x07,
    )  # FAULT, LOCAL, CHARGING, connected|available|operating (fault bit 4 has no StorConn bit)


# -- CSIP-AUS extensions --------------------------------------------------------------------


@pytest.mark.parametrize("ns", [CSIPAUS_13, CSIPAUS_12])
def test_csipaus_extensions_are_stored_and_served_back(ns: str) -> None:
    core, _, _ = make()
    doc = (
        f'<DERCapability xmlns="{NS}" xmlns:csipaus="{ns}">'
        "<modesSupported>00000001</modesSupported><rtgMaxW><multiplier>0</multiplier>"
        "<value>5000</value></rtgMaxW><type>80</type>"
        "<csipaus:doeModesSupported>0F</csipaus:doeModesSupported></DERCapability>"
    ).encode()
    assert core.handle("PUT", "/edev/1/der/1/dercap", {}, doc, A).status == 204
    r = core.handle("GET", "/edev/1/der/1/dercap", {}, b"", A)
    assert r.status == 200
    back = etree.fromstring(r.body)
    assert back.findtext(f"{{{ns}}}doeModesSupported") == "0F"
    assert back.get("href") == "/edev/1/der/1/dercap"


@pytest.mark.parametrize("ns", [CSIPAUS_13, CSIPAUS_12])
def test_csipaus_settings_extension_is_kept(ns: str) -> None:
    core, _, _ = make()
    ext = f'<c:doeModesEnabled xmlns:c="{ns}">03</c:doeModesEnabled>'.encode()
    doc = SETTINGS.replace(b"<updatedTime>1</updatedTime>", b"<updatedTime>1</updatedTime>" + ext)
    assert core.handle("PUT", "/edev/1/der/1/derg", {}, doc, A).status == 204
    back = etree.fromstring(core.handle("GET", "/edev/1/der/1/derg", {}, b"", A).body)
    assert back.findtext(f"{{{ns}}}doeModesEnabled") == "03"
