"""BridgeCore without I/O: routing, access, paging, status codes, XSD-valid output."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from lxml import etree

from edge.bridge.config import BridgeConfig, BridgeDevice, BridgeTls
from edge.bridge.core import BridgeCore, Device, Reply
from edge.bridge.identity import sfdi_from_lfdi
from tests.unit.test_bridge_xsd import assert_valid

NS = "urn:ieee:std:2030.5:ns"
A = "3e4f45ab31edfe5b67e343e5e4562e31984e23e5"
B = "2ee1453c8a019b6be4ec91317dcf6082c2f8090a"
C = "0123456789abcdef0123456789abcdef01234567"
T0 = 1_800_000_000.0


class Recorder:
    def __init__(self) -> None:
        self.added: list[str] = []
        self.removed: list[str] = []
        self.values: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []

    def device_added(self, dev: Device) -> None:
        self.added.append(dev.name)

    def device_removed(self, dev: Device) -> None:
        self.removed.append(dev.name)

    def points(self, dev: Device, values: dict[str, Any]) -> None:
        self.values.setdefault(dev.name, {}).update(values)

    def event(self, dev: Device, body: dict[str, Any]) -> None:
        self.events.append((dev.name, body))


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def make(**kw: Any) -> tuple[BridgeCore, Recorder, Clock]:
    cfg = BridgeConfig(
        tls=BridgeTls("c", "k", "ca"),
        devices=(BridgeDevice("bat", A, sfdi_from_lfdi(A), 1234),),
        default_control={"opModConnect": True, "opModMaxLimW": 10000},
    )
    rec, clock = Recorder(), Clock()
    core = BridgeCore(replace(cfg, **kw), clock, rec)
    core.start()
    return core, rec, clock


def x(root: str, body: str) -> bytes:
    return f'<{root} xmlns="{NS}">{body}</{root}>'.encode()


SETTINGS = x(
    "DERSettings",
    "<setGradW>0</setGradW><setMaxChargeRateW><multiplier>3</multiplier><value>5</value>"
    "</setMaxChargeRateW><setMaxW><multiplier>3</multiplier><value>6</value></setMaxW>"
    "<updatedTime>1</updatedTime>",
)


def edev(lfdi: str, extra: str = "") -> bytes:
    """A valid EndDevice registration for the certificate with this LFDI."""
    return x("EndDevice", f"{extra}<sFDI>{sfdi_from_lfdi(lfdi)}</sFDI><changedTime>1</changedTime>")


def mup_doc(mrid: str, lfdi: str = A, readings: str = "") -> bytes:
    return x(
        "MirrorUsagePoint",
        f"<mRID>{mrid}</mRID><roleFlags>01</roleFlags><serviceCategoryKind>0</serviceCategoryKind>"
        f"<status>1</status><deviceLFDI>{lfdi}</deviceLFDI>{readings}",
    )


def get(core: BridgeCore, path: str, lfdi: str = A, **q: str) -> Reply:
    r = core.handle("GET", path, q, b"", lfdi)
    if r.body:
        assert_valid(r.body)
    return r


def tree(r: Reply) -> etree._Element:
    assert r.status == 200, r
    return etree.fromstring(r.body)


def test_every_document_emitted_validates_against_the_xsd() -> None:
    core, _, clock = make()
    assert core.handle("PUT", "/edev/1/der/1/derg", {}, SETTINGS, A).status == 204
    core.set_wchamax("bat", 1000)
    core.set_derc("bat", {"start": int(T0) + 100, "duration": 60, "opModTargetW": -1234.5,
                          "opModTargetVar": 100, "randomizeDuration": 5, "primacy": 2})  # fmt: skip
    mup = x(
        "MirrorUsagePoint",
        "<mRID>01</mRID><roleFlags>01</roleFlags><serviceCategoryKind>0</serviceCategoryKind>"
        f"<status>1</status><deviceLFDI>{A}</deviceLFDI>",
    )
    m = core.handle("POST", "/mup", {}, mup, A)
    assert m.status == 201
    mrid = core.devices[1].schedule.controls[0].mrid
    rsp = x(
        "Response", f"<endDeviceLFDI>{A}</endDeviceLFDI><status>1</status><subject>{mrid}</subject>"
    )
    assert core.handle("POST", "/edev/1/rsp", {}, rsp, A).status == 201
    paths = ["/dcap", "/tm", "/edev", "/edev/1", "/edev/1/rg", "/edev/1/fsa", "/edev/1/fsa/1",
             "/edev/1/der", "/edev/1/der/1", "/edev/1/der/1/derg", "/edev/1/derp",
             "/edev/1/derp/1", "/edev/1/derp/2", "/edev/1/derp/1/derc", "/edev/1/derp/2/derc",
             "/edev/1/derp/1/actderc", "/edev/1/derp/1/dderc", f"/edev/1/derp/1/derc/{mrid}",
             "/edev/1/rsp", "/edev/1/rsp/1", "/mup", "/mup/1"]  # fmt: skip
    for t in (T0, T0 + 150):
        clock.t = t
        for p in paths:
            r = get(core, p, l="10")
            assert r.status == 200 and r.content_type == "application/sep+xml", (p, r.status)
    assert core.handle("PUT", "/edev/1/di", {}, b"<nope", A).body  # Error body, validated below
    assert_valid(core.handle("PUT", "/edev/1/di", {}, b"<nope", A).body)


def test_paging_s_a_l_and_all_results() -> None:
    core, _, _ = make()
    core.handle("PUT", "/edev/1/der/1/derg", {}, SETTINGS, A)
    mrids = []
    for i in range(5):
        r = core.set_derc(
            "bat", {"start": int(T0) + 1000 * i, "duration": 10, "opModConnect": True}
        )
        mrids.append(r["mrid"])
    lst = tree(get(core, "/edev/1/derp/1/derc", s="1", l="2"))
    assert (lst.get("all"), lst.get("results")) == ("5", "2")
    assert [e.findtext(f"{{{NS}}}mRID") for e in lst] == mrids[1:3]
    lst = tree(get(core, "/edev/1/derp/1/derc"))  # l defaults to 1 (2030.5)
    assert (lst.get("all"), lst.get("results")) == ("5", "1")
    lst = tree(get(core, "/edev/1/derp/1/derc", a=str(int(T0) + 2500), l="10"))
    assert [e.findtext(f"{{{NS}}}mRID") for e in lst] == mrids[3:]
    # B12: empty values crashed the original; here they mean "default"
    lst = tree(get(core, "/edev", s="", l=""))
    assert lst.get("results") == "1"
    lst = tree(get(core, "/edev", s="7", l="10"))
    assert (lst.get("all"), lst.get("results")) == ("1", "0")
    for bad in ({"s": "-1"}, {"l": "x"}, {"a": "1.5"}):
        r = core.handle("GET", "/edev", bad, b"", A)
        assert r.status == 400 and b"reasonCode" in r.body


def test_posts_to_collections_never_raise_b12() -> None:
    core, _, _ = make()
    for p in ("/edev/1/fsa", "/edev/1/der", "/edev/1/derp", "/edev/1/derp/1/derc", "/dcap", "/tm"):
        r = core.handle("POST", p, {}, b"<x/>", A)
        assert r.status == 405, (p, r.status)
    assert core.handle("DELETE", "/edev/1", {}, b"", A).status == 405
    assert core.handle("GET", "/nope", {}, b"", A).status == 404
    assert core.handle("GET", "/edev/1/der/1/dercap", {}, b"", A).status == 404  # not posted yet


def test_registration_closed_open_and_conflicts() -> None:
    core, rec, _ = make()
    assert core.handle("GET", "/dcap", {}, b"", None).status == 403  # no certificate
    assert core.handle("GET", "/dcap", {}, b"", B).status == 403  # unknown, closed
    reg = edev(B)
    assert core.handle("POST", "/edev", {}, reg, B).status == 403
    # a registered LFDI may not register again (CSIP-AUS S-ALL-51, S-OPT-01) ...
    r = core.handle("POST", "/edev", {}, edev(A), A)
    assert r.status == 409 and b"already registered" in r.body
    # ... unless the site allows idempotent registration
    core2, _, _ = make(allow_reregistration=True)
    r = core2.handle("POST", "/edev", {}, edev(A), A)
    assert (r.status, r.location) == (201, "/edev/1")

    core, rec, _ = make(allow_registration=True)
    assert tree(get(core, "/edev", lfdi=B)).get("all") == "0"  # sees nobody before registering
    assert core.handle("GET", "/edev/1", {}, b"", B).status == 403
    r = core.handle("POST", "/edev", {}, reg, B)
    assert (r.status, r.location) == (201, "/edev/2")
    assert rec.added == ["bat", f"edev-{sfdi_from_lfdi(B)}"]
    assert rec.values[f"edev-{sfdi_from_lfdi(B)}"]["1/SN"] == str(sfdi_from_lfdi(B))
    # the SFDI in the body must be the certificate's
    r = core.handle("POST", "/edev", {}, edev(A), C)
    assert r.status == 409 and b"reasonCode" in r.body
    r = core.handle("POST", "/edev", {}, edev(C, f"<lFDI>{B}</lFDI>"), C)
    assert r.status == 409
    assert (
        core.handle("POST", "/edev", {}, x("EndDevice", "<changedTime>1</changedTime>"), C).status
        == 400
    )


def test_isolation_between_devices() -> None:
    core, rec, _ = make(allow_registration=True)
    assert core.handle("POST", "/edev", {}, edev(B), B).status == 201
    for method, path in (
        ("GET", "/edev/1"),
        ("GET", "/edev/1/derp/1/derc"),
        ("PUT", "/edev/1/der/1/derg"),
        ("POST", "/edev/1/rsp"),
        ("GET", "/edev/1/rg"),
    ):
        assert core.handle(method, path, {}, SETTINGS, B).status == 403
    assert "bat" not in rec.values or "121/WMax" not in rec.values["bat"]
    assert core.handle("POST", "/mup", {}, mup_doc("0A"), A).status == 201
    assert core.handle("GET", "/mup/1", {}, b"", B).status == 404
    assert (
        core.handle("POST", "/mup/1", {}, x("MirrorMeterReading", "<mRID>1</mRID>"), B).status
        == 404
    )
    assert tree(get(core, "/mup", lfdi=B)).get("all") == "0"


def test_control_lifecycle_seen_by_the_device() -> None:
    core, rec, clock = make()
    with pytest.raises(Exception, match="setMaxChargeRateW yet"):
        core.set_wchamax("bat", 100)  # no rating reported: refuse, do not guess
    core.handle("PUT", "/edev/1/der/1/derg", {}, SETTINGS, A)
    r = core.set_wchamax("bat", 0)
    assert r["raw"] == 0 and rec.values["bat"]["124/WChaMax"] == 0.0
    act = tree(get(core, "/edev/1/derp/1/actderc", l="5"))
    assert act.findtext(f"{{{NS}}}DERControl/{{{NS}}}DERControlBase/{{{NS}}}opModFixedW") == "0"
    prog = tree(get(core, "/edev/1/der/1"))
    assert prog.find(f"{{{NS}}}CurrentDERProgramLink").get("href") == "/edev/1/derp/1"
    clock.t += 900  # the WChaMax lease (wchamax_duration_s) runs out
    assert tree(get(core, "/edev/1/derp/1/actderc")).get("all") == "0"
    assert tree(get(core, "/edev/1/der/1")).find(f"{{{NS}}}CurrentDERProgramLink") is None
    dd = tree(get(core, "/edev/1/derp/1/dderc"))
    assert dd.findtext(f"{{{NS}}}DERControlBase/{{{NS}}}opModConnect") == "true"


def test_responses_are_events() -> None:
    core, rec, _ = make()
    core.handle("PUT", "/edev/1/der/1/derg", {}, SETTINGS, A)
    mrid = core.set_wchamax("bat", 100)["mrid"]
    r = core.handle("POST", "/edev/1/rsp", {}, x("DERControlResponse",
                    f"<createdDateTime>5</createdDateTime><endDeviceLFDI>{A.upper()}</endDeviceLFDI>"
                    f"<status>3</status><subject>{mrid.lower()}</subject>"), A)  # fmt: skip
    assert (r.status, r.location) == (201, "/edev/1/rsp/1")
    assert rec.events == [
        ("bat", {"kind": "response", "subject": mrid, "status": 3, "createdDateTime": 5})
    ]
    for body in (
        f"<status>3</status><subject>{'0' * 32}</subject>",  # not its control
        f"<status>99</status><subject>{mrid}</subject>",  # not a ResponseType
        f"<endDeviceLFDI>{B}</endDeviceLFDI><status>1</status><subject>{mrid}</subject>",
    ):
        assert core.handle("POST", "/edev/1/rsp", {}, x("Response", body), A).status == 400
    assert len(rec.events) == 1


def test_bad_xml_gives_400_with_error_and_loses_nothing() -> None:
    core, rec, _ = make()
    core.handle("PUT", "/edev/1/der/1/derg", {}, SETTINGS, A)
    before = dict(rec.values["bat"])
    for body in (
        b"",
        b"<DERSettings",
        b"<DERStatus/>",
        x("DERSettings", "<setMaxW>lots</setMaxW>"),
    ):
        r = core.handle("PUT", "/edev/1/der/1/derg", {}, body, A)
        assert r.status == 400 and b"<reasonCode>" in r.body, body
    assert rec.values["bat"] == before
    assert tree(get(core, "/edev/1/der/1/derg")).findtext(f"{{{NS}}}setMaxW/{{{NS}}}value") == "6"


def test_polled_list_follows_status_changes_despite_render_cache() -> None:
    core, _, clock = make()
    core.handle("PUT", "/edev/1/der/1/derg", {}, SETTINGS, A)
    r = core.set_derc("bat", {"start": int(T0) + 10, "duration": 10, "opModConnect": False})
    status = f"{{{NS}}}DERControl/{{{NS}}}EventStatus/{{{NS}}}currentStatus"

    def current() -> str | None:
        return tree(get(core, "/edev/1/derp/1/derc", l="5")).findtext(status)

    assert current() == current() == "0"  # scheduled (second answer from the cache)
    clock.t = T0 + 10
    assert current() == "1"  # active
    core.set_derc("bat", {"cancel": r["mrid"]})
    assert current() == "2"  # cancelled, still listed
    clock.t = T0 + 20
    assert tree(get(core, "/edev/1/derp/1/derc")).get("all") == "0"  # over: no longer listed


def test_wchamax_point_follows_its_control() -> None:
    core, _, clock = make()
    core.handle("PUT", "/edev/1/der/1/derg", {}, SETTINGS, A)
    dev = core.devices[1]
    assert core.wchamax_now(dev) is None
    r = core.set_wchamax("bat", 1500)
    assert core.wchamax_now(dev) == 1500.0
    clock.t += 900  # wchamax_duration_s
    assert core.wchamax_now(dev) is None
    core.set_wchamax("bat", 0)
    assert core.wchamax_now(dev) == 0.0  # 0 is a value, not "nothing"
    core.set_derc("bat", {"duration": 60, "opModConnect": False})  # supersedes the WChaMax event
    clock.t += 1
    assert core.wchamax_now(dev) is None
    assert dev.schedule.get(r["mrid"]) is not None  # ended events are kept, not deleted


def test_tick_publishes_null_once_the_wchamax_control_ends() -> None:
    core, rec, clock = make()
    core.handle("PUT", "/edev/1/der/1/derg", {}, SETTINGS, A)
    core.set_wchamax("bat", 1500)
    core.tick()
    assert rec.values["bat"]["124/WChaMax"] == 1500.0  # still live: unchanged
    clock.t += 900
    core.tick()
    assert rec.values["bat"]["124/WChaMax"] is None
    rec.values["bat"]["124/WChaMax"] = "sentinel"
    core.tick()
    assert rec.values["bat"]["124/WChaMax"] == "sentinel"  # published once, not every tick


def test_control_routes_set_requests_by_key() -> None:
    from edge.bridge.controls import ControlError

    core, _, _ = make()
    core.handle("PUT", "/edev/1/der/1/derg", {}, SETTINGS, A)
    assert core.control("bat", "124/WChaMax", {"value": 100})["raw"] == -200
    assert core.control("bat", "derc", {"duration": 60, "opModConnect": True})["status"] == 1
    for key, body, code in (
        ("124/WChaMax", {}, "invalid_payload"),
        ("802/SoC", {"value": 1}, "not_writable"),
        ("999/X", {"value": 1}, "unknown_point"),
    ):
        with pytest.raises(ControlError) as exc:
            core.control("bat", key, body)
        assert exc.value.code == code
