"""CSIP-AUS on the bridge: DOE limits, DefaultDERControl at run time, ConnectionPoint, PEN mRIDs,
per-resource rates and the operator's admin ops. No I/O (BridgeCore directly)."""

from __future__ import annotations

import pytest
from lxml import etree

from edge.bridge.controls import ControlError
from edge.bridge.identity import nmi_checksum, nmi_valid, sfdi_from_lfdi
from tests.unit.test_bridge_core import NS, SETTINGS, A, B, edev, get, make, mup_doc, tree, x
from tests.unit.test_bridge_defects import refused, stored

CSIP13 = "https://csipaus.org/ns/v1.3"
CSIP12 = "https://csipaus.org/ns"


def cp(nmi: str, ns: str = CSIP12) -> bytes:
    body = f"<connectionPointId>{nmi}</connectionPointId>"
    return f'<ConnectionPoint xmlns="{ns}">{body}</ConnectionPoint>'.encode()


def test_doe_limits_in_set_derc_are_served_in_the_csipaus_namespace() -> None:
    core, _, _ = make()
    r = core.set_derc("bat", {"duration": 600, "opModExpLimW": 1500, "opModImpLimW": 0,
                              "opModGenLimW": 2000.5, "opModLoadLimW": 3000})  # fmt: skip
    ctl = tree(get(core, f"/edev/1/derp/1/derc/{r['mrid']}"))  # get() validates (CSIP-AUS xsd)
    base = ctl.find(f"{{{NS}}}DERControlBase")
    got = {
        etree.QName(e).localname: (e.findtext(f"{{{NS}}}multiplier"), e.findtext(f"{{{NS}}}value"))
        for e in base
    }
    assert got == {"opModExpLimW": ("0", "1500"), "opModImpLimW": ("0", "0"),
                   "opModGenLimW": ("-1", "20005"), "opModLoadLimW": ("0", "3000")}  # fmt: skip
    assert all(etree.QName(e).namespace == CSIP13 for e in base)
    for bad in ({"opModExpLimW": -1}, {"opModGenLimW": "1"}, {"opModLoadLimW": float("nan")}):
        with pytest.raises(ControlError):
            core.set_derc("bat", {"duration": 60, **bad})


def test_csipaus_namespace_of_the_output_is_a_setting() -> None:
    core, _, _ = make(csipaus_ns=CSIP12)
    r = core.set_derc("bat", {"duration": 600, "opModExpLimW": 1500})
    body = get(core, f"/edev/1/derp/1/derc/{r['mrid']}").body
    assert CSIP13.encode() not in body and f'"{CSIP12}"'.encode() in body


def test_set_dderc_replaces_the_default_with_set_grad_w_and_reset_restores_it() -> None:
    core, _, _ = make()
    before = tree(get(core, "/edev/1/derp/1/dderc"))
    reply = core.control(
        "bat", "dderc", {"opModExpLimW": 5000, "setGradW": 50, "opModConnect": True}
    )
    assert reply["default"] == {"opModExpLimW": 5000.0, "setGradW": 50, "opModConnect": True}
    after = tree(get(core, "/edev/1/derp/1/dderc"))
    assert after.findtext(f"{{{NS}}}setGradW") == "50"
    assert after.find(f"{{{NS}}}DERControlBase/{{{CSIP13}}}opModExpLimW") is not None
    assert after.findtext(f"{{{NS}}}mRID") != before.findtext(f"{{{NS}}}mRID")  # new version
    for bad in ({"setGradW": 70000}, {"opModFixedW": 20000}, {"bogus": 1}, {"primacy": "1"}):
        with pytest.raises(ControlError):
            core.control("bat", "dderc", bad)
    assert tree(get(core, "/edev/1/derp/1/dderc")).findtext(f"{{{NS}}}setGradW") == "50"
    core.control("bat", "dderc", {"reset": True})
    assert etree.tostring(tree(get(core, "/edev/1/derp/1/dderc"))) != etree.tostring(after)
    # a default for another primacy creates that DERProgram
    core.control("bat", "dderc", {"primacy": 3, "opModImpLimW": 100})
    assert tree(get(core, "/edev/1/derp", l="10")).get("all") == "2"


def test_server_mrids_end_in_the_pen() -> None:
    core, _, _ = make(pen=28547)
    r = core.set_derc("bat", {"duration": 60, "opModConnect": True})
    assert r["mrid"].endswith("00028547") and len(r["mrid"]) == 32
    for path in ("/edev/1/fsa/1", "/edev/1/derp/1", "/edev/1/derp/1/dderc"):
        assert tree(get(core, path)).findtext(f"{{{NS}}}mRID").endswith("00028547"), path
    core.handle("PUT", "/edev/1/der/1/derg", {}, SETTINGS, A)
    assert core.set_wchamax("bat", 100)["mrid"].endswith("00028547")


def test_nmi_check_digit() -> None:
    assert nmi_checksum("4102000000") == 2 and nmi_checksum("4102000002") == 6
    assert nmi_valid("41020000002") and nmi_valid("4102000000") and nmi_valid("QAAAVZZZZZ")
    for bad in ("41020000003", "NOTAVALIDID", "410200000", "41O2000000", ""):
        assert not nmi_valid(bad), bad


def test_connection_point_put_get_and_refusals() -> None:
    core, _, _ = make()
    edv = tree(get(core, "/edev/1"))
    link = edv.find(f"{{{CSIP13}}}ConnectionPointLink")
    assert link is not None and link.get("href") == "/edev/1/cp"
    assert core.handle("GET", "/edev/1/cp", {}, b"", A).status == 404
    r = core.handle("PUT", "/edev/1/cp", {}, cp("41020000002"), A)
    assert (r.status, r.location) == (201, "/edev/1/cp")
    back = etree.fromstring(core.handle("GET", "/edev/1/cp", {}, b"", A).body)
    assert back.findtext(f"{{{CSIP12}}}connectionPointId") == "41020000002"
    for body in (cp("NOTAVALIDID"), cp("41020000002", NS), cp("4102000000" + "1"),
                 b"<ConnectionPoint><connectionPointId>41020000002</connectionPointId>"
                 b"</ConnectionPoint>"):  # fmt: skip
        err = refused(core, "PUT", "/edev/1/cp", body)
        assert etree.fromstring(err).findtext(f"{{{NS}}}reasonCode") in ("0", "1")
    assert refused(core, "PUT", "/edev/1/cp", cp("NOTAVALIDID")).count(b"<reasonCode>1<") == 1
    assert core.handle("GET", "/edev/1/cp", {}, b"", B).status == 403


def test_poll_and_post_rates_per_resource_from_the_site_file_and_at_run_time() -> None:
    core, _, _ = make(poll_rates={"DERProgramList": 60, "DeviceCapability": 300},
                      post_rates={"EndDevice": 30})  # fmt: skip
    assert tree(get(core, "/dcap")).get("pollRate") == "300"
    assert tree(get(core, "/edev/1/derp")).get("pollRate") == "60"
    assert tree(get(core, "/edev")).get("pollRate") == str(core.cfg.poll_rate_s)
    assert tree(get(core, "/edev/1")).findtext(f"{{{NS}}}postRate") == "30"
    core.admin("rates", {"resource": "EndDeviceList", "poll_rate_s": 120})
    assert tree(get(core, "/edev")).get("pollRate") == "120"
    for bad in ({"resource": "Nope", "poll_rate_s": 1}, {"resource": "DERList"},
                {"resource": "DERList", "poll_rate_s": 0}):  # fmt: skip
        with pytest.raises(ControlError):
            core.admin("rates", bad)


def test_admin_register_remove_access_and_mup_clear() -> None:
    core, rec, _ = make()
    assert core.handle("GET", "/dcap", {}, b"", B).status == 403  # registration closed
    r = core.admin("edev", {"lfdi": B.upper(), "registered": True, "pin": 4321})
    assert r["name"] == f"edev-{sfdi_from_lfdi(B)}" and rec.added[-1] == r["name"]
    assert core.admin("edev", {"lfdi": B, "registered": True})["href"] == r["href"]  # idempotent
    assert tree(get(core, "/edev/2/rg", lfdi=B)).findtext(f"{{{NS}}}pIN") == "4321"
    assert core.handle("POST", "/mup", {}, mup_doc("2A", B), B).status == 201
    assert core.admin("mup-clear", {"lfdi": B}) == {"removed": 1}
    assert tree(get(core, "/mup", lfdi=B)).get("all") == "0"
    core.admin("access", {"lfdi": A, "granted": False})
    assert core.handle("GET", "/dcap", {}, b"", A).status == 403
    core.admin("access", {"lfdi": A, "granted": True})
    assert core.handle("GET", "/dcap", {}, b"", A).status == 200
    assert core.handle("POST", "/mup", {}, mup_doc("2B", B), B).status == 201
    core.admin("edev", {"lfdi": B, "registered": False})
    assert rec.removed == [r["name"]] and not core.mrid_owner.get("2B")
    assert core.handle("GET", "/dcap", {}, b"", B).status == 403
    before = stored(core)
    for op, body in (("edev", {"lfdi": "12", "registered": True}),
                     ("edev", {"lfdi": B, "registered": "yes"}),
                     ("edev", {"lfdi": B, "registered": True, "name": "bat"}),  # name taken
                     ("access", {"lfdi": A}), ("mup-clear", {"lfdi": B}),
                     ("program", {"lfdi": A, "primacy": 300}), ("nope", {})):  # fmt: skip
        with pytest.raises(ControlError):
            core.admin(op, body)
    assert stored(core) == before


def test_in_band_registration_after_admin_removal() -> None:
    core, _, _ = make(allow_registration=True)
    assert core.handle("POST", "/edev", {}, edev(B), B).status == 201
    core.admin("edev", {"lfdi": B, "registered": False})
    assert core.handle("POST", "/edev", {}, edev(B), B).status == 201  # may register again


def test_aggregator_manages_several_end_devices() -> None:
    from edge.bridge.config import BridgeAggregator

    agg = "a9" * 20
    d1, d2 = "d1" * 20, "d2" * 20
    core, rec, _ = make(aggregators=(BridgeAggregator("agg", agg),))  # registration closed
    assert tree(get(core, "/edev", lfdi=agg)).get("all") == "1"  # its own EndDevice, /edev/0
    for d in (d1, d2):
        r = core.handle("POST", "/edev", {}, edev(d, f"<lFDI>{d.upper()}</lFDI>"), agg)
        assert r.status == 201, r
    lst = tree(get(core, "/edev", lfdi=agg, l="10"))
    assert lst.get("all") == "3"
    hrefs = [e.get("href") for e in lst.findall(f"{{{NS}}}EndDevice")]
    assert hrefs[0] == "/edev/0"
    hrefs = hrefs[1:]
    assert tree(get(core, "/dcap", lfdi=agg)).find(f"{{{NS}}}EndDeviceListLink").get("all") == "3"
    # each managed device's resources, and mirror data in its name
    assert core.handle("PUT", f"{hrefs[0]}/der/1/derg", {}, SETTINGS, agg).status == 204
    assert core.handle("POST", "/mup", {}, mup_doc("3A", d1), agg).status == 201
    assert core.handle("POST", "/mup", {}, mup_doc("3B", A), agg).status == 403  # not managed
    assert tree(get(core, "/mup", lfdi=agg)).get("all") == "1"
    assert rec.added[-2:] == [f"edev-{sfdi_from_lfdi(d1)}", f"edev-{sfdi_from_lfdi(d2)}"]
    # another client sees none of it; nobody else can take over a managed device
    assert core.handle("GET", hrefs[0], {}, b"", A).status == 403
    assert core.handle("GET", "/edev/1", {}, b"", agg).status == 403  # "bat" is not managed
    r = core.handle("POST", "/edev", {}, edev(d1, f"<lFDI>{d1.upper()}</lFDI>"), agg)
    assert r.status == 409  # registered already
    # a device cannot register someone else's LFDI (it is not an aggregator)
    r = core.handle("POST", "/edev", {}, edev(B, f"<lFDI>{B.upper()}</lFDI>"), A)
    assert r.status == 409


def test_registered_device_category_is_served_back() -> None:
    core, _, _ = make(allow_registration=True)
    body = x("EndDevice", f"<deviceCategory>200000</deviceCategory><sFDI>{sfdi_from_lfdi(B)}"
             "</sFDI><changedTime>1</changedTime>")  # fmt: skip
    assert core.handle("POST", "/edev", {}, body, B).status == 201
    assert tree(get(core, "/edev/2", lfdi=B)).findtext(f"{{{NS}}}deviceCategory") == "200000"


def test_programs_grouped_in_several_function_set_assignments() -> None:
    core, _, _ = make()
    core.admin("program", {"lfdi": A, "primacy": 2, "fsa": 2})
    lst = tree(get(core, "/edev/1/fsa", l="10"))
    assert lst.get("all") == "2"
    links = [f.find(f"{{{NS}}}DERProgramListLink").get("href") for f in lst]
    assert links == ["/edev/1/fsa/1/derp", "/edev/1/fsa/2/derp"]
    p1 = tree(get(core, links[0], l="10")).findall(f"{{{NS}}}DERProgram/{{{NS}}}primacy")
    p2 = tree(get(core, links[1], l="10")).findall(f"{{{NS}}}DERProgram/{{{NS}}}primacy")
    assert [p.text for p in p1] == ["1"] and [p.text for p in p2] == ["2"]
    assert tree(get(core, "/edev/1/derp", l="10")).get("all") == "2"  # the DER sees both
    assert core.handle("GET", "/edev/1/fsa/3", {}, b"", A).status == 404


def test_posted_reading_list_may_omit_all_and_results() -> None:
    """cactus-client (envoy-schema) posts MirrorMeterReadingList without them."""
    core, rec, _ = make()
    assert core.handle("POST", "/mup", {}, mup_doc("4A"), A).status == 201
    lst = x(
        "MirrorMeterReadingList",
        "<MirrorMeterReading><mRID>4A01</mRID><description>PhasePowerAvg</description>"
        "<Reading><value>5000</value></Reading></MirrorMeterReading>",
    )
    assert core.handle("POST", "/mup/1", {}, lst, A).status == 201
    assert rec.values["bat"]["113/DCW"] == 5000.0
