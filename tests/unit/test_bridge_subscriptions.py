"""Subscription / Notification in the core: what may be subscribed, and when a Notification is
queued (once per change, including changes that only time makes). No I/O."""

from __future__ import annotations

from lxml import etree

from tests.unit.test_bridge_core import NS, A, B, get, make, tree, x
from tests.unit.test_bridge_defects import refused
from tests.unit.test_bridge_xsd import assert_valid

XSI = "http://www.w3.org/2001/XMLSchema-instance"


def sub_doc(resource: str, uri: str = "https://127.0.0.1:9/notify", limit: int = 5) -> bytes:
    return x(
        "Subscription",
        f"<subscribedResource>{resource}</subscribedResource><encoding>0</encoding>"
        f"<level>+S1</level><limit>{limit}</limit><notificationURI>{uri}</notificationURI>",
    )


def test_subscribe_list_get_delete() -> None:
    core, _, _ = make()
    edv = tree(get(core, "/edev/1"))
    assert edv.find(f"{{{NS}}}SubscriptionListLink").get("href") == "/edev/1/sub"
    for res in ("/edev/1/derp/1/derc", "/edev/1/derp/1/dderc", "/edev/1/derp", "/edev/1/fsa",
                "/edev/1/derp/1"):  # fmt: skip
        r = core.handle("POST", "/edev/1/sub", {}, sub_doc(res), A)
        assert r.status == 201 and r.location, (res, r)
    lst = tree(get(core, "/edev/1/sub", l="10"))
    assert lst.get("all") == "5"
    one = tree(get(core, "/edev/1/sub/1"))
    assert one.findtext(f"{{{NS}}}subscribedResource") == "/edev/1/derp/1/derc"
    assert core.handle("DELETE", "/edev/1/sub/1", {}, b"", A).status == 204
    assert core.handle("GET", "/edev/1/sub/1", {}, b"", A).status == 404
    assert core.handle("GET", "/edev/1/sub/2", {}, b"", B).status == 403  # not B's


def test_bad_subscriptions_are_refused_and_store_nothing() -> None:
    core, _, _ = make()
    for body in (
        sub_doc("/edev/1/der/1/derg"),  # not subscribable here
        sub_doc("/edev/2/derp/1/derc"),  # another device's
        sub_doc("/edev/1/derp/1/derc", uri="http://127.0.0.1/n"),  # not TLS
        sub_doc("/edev/1/derp/1/derc", limit=-1),
        sub_doc("/edev/1/derp/1/derc").replace(b"<encoding>0<", b"<encoding>1<"),
        sub_doc("/edev/1/derp/1/derc").replace(b"<level>+S1</level>", b""),
    ):
        refused(core, "POST", "/edev/1/sub", body)
    assert not core.server.subscriptions


def test_a_change_queues_one_notification_with_the_resource() -> None:
    core, _, clock = make()
    assert core.handle("POST", "/edev/1/sub", {}, sub_doc("/edev/1/derp/1/derc"), A).status == 201
    first = core.server.outbox.pop()  # the list as it is now, once, at once
    assert etree.fromstring(first.body).find(f"{{{NS}}}Resource").get(f"{{{XSI}}}type") == (
        "DERControlList"
    )
    assert core.scan_notifications() == 0  # nothing changed since
    r = core.control("bat", "derc", {"start": int(clock.t) + 10, "duration": 60,
                                     "opModExpLimW": 1000})  # fmt: skip
    out = core.server.outbox
    assert len(out) == 1 and out[0].uri == "https://127.0.0.1:9/notify"
    doc = etree.fromstring(out[0].body)
    assert_valid(out[0].body)
    res = doc.find(f"{{{NS}}}Resource")
    assert res.get(f"{{{XSI}}}type") == "DERControlList"
    assert res.find(f"{{{NS}}}DERControl/{{{NS}}}mRID").text == r["mrid"]
    assert doc.findtext(f"{{{NS}}}subscriptionURI") == "https://0.0.0.0:8443/edev/1/sub/1"
    assert core.scan_notifications() == 0  # once per change
    clock.t += 10  # the event starts: its status changes, so does the list
    core.tick()
    assert len(out) == 2
    clock.t += 60  # ... and ends
    core.tick()
    assert len(out) == 3
    core.admin("edev", {"lfdi": A, "registered": False})
    core.tick()
    assert not core.server.subscriptions  # the device is gone, so are its subscriptions


def test_subscription_uri_is_absolute_under_the_public_url() -> None:
    """2030.5 requires a fully qualified subscriptionURI, never a relative reference."""
    core, _, _ = make(public_url="https://gateway.example:8443")
    assert core.handle("POST", "/edev/1/sub", {}, sub_doc("/edev/1/derp/1/derc"), A).status == 201
    n = core.server.outbox.pop()
    assert_valid(n.body)
    uri = etree.fromstring(n.body).findtext(f"{{{NS}}}subscriptionURI")
    assert uri == "https://gateway.example:8443/edev/1/sub/1"
    assert n.subscription == "/edev/1/sub/1"  # the delivery key stays the local href


def test_default_control_change_notifies_its_subscribers_only() -> None:
    core, _, _ = make()
    core.handle("POST", "/edev/1/sub", {}, sub_doc("/edev/1/derp/1/dderc"), A)
    core.handle("POST", "/edev/1/sub", {}, sub_doc("/edev/1/fsa"), A)
    core.server.outbox.clear()  # the two initial notifications
    core.control("bat", "dderc", {"opModExpLimW": 500, "setGradW": 10})
    assert [n.subscription for n in core.server.outbox] == ["/edev/1/sub/1"]
    kind = etree.fromstring(core.server.outbox[0].body).find(f"{{{NS}}}Resource")
    assert kind.get(f"{{{XSI}}}type") == "DefaultDERControl"
    core.control("bat", "dderc", {"primacy": 4, "opModExpLimW": 1})  # a new program: fsa list
    assert [n.subscription for n in core.server.outbox][-1] == "/edev/1/sub/2"


def test_a_new_subscription_is_notified_at_once_with_the_resource_as_it_is() -> None:
    """A change between the device's GET and its POST of the Subscription is never missed."""
    core, _, _ = make()
    for k, res in enumerate(("/edev/1/fsa", "/edev/1/fsa/1/derp", "/edev", "/edev/1/derp/1/dderc")):
        assert core.handle("POST", "/edev/1/sub", {}, sub_doc(res), A).status == 201
        n = core.server.outbox[-1]
        assert len(core.server.outbox) == k + 1 and n.subscription == f"/edev/1/sub/{k + 1}"
        assert_valid(n.body)
        doc = etree.fromstring(n.body)
        assert doc.findtext(f"{{{NS}}}subscribedResource") == res
    kinds = [etree.fromstring(n.body).find(f"{{{NS}}}Resource").get(f"{{{XSI}}}type")
             for n in core.server.outbox]  # fmt: skip
    assert kinds == ["FunctionSetAssignmentsList", "DERProgramList", "EndDeviceList",
                     "DefaultDERControl"]  # fmt: skip
    assert core.scan_notifications() == 0


def test_subscribable_resources_say_so() -> None:
    core, _, _ = make()
    for path in ("/edev", "/edev/1/fsa", "/edev/1/fsa/1/derp", "/edev/1/derp", "/edev/1/derp/1",
                 "/edev/1/derp/1/derc", "/edev/1/derp/1/dderc"):  # fmt: skip
        assert tree(get(core, path)).get("subscribable") == "1", path
    assert tree(get(core, "/edev/1/derp/1/actderc")).get("subscribable") is None


def test_an_aggregator_subscribes_on_its_own_end_device() -> None:
    """CSIP-AUS: an aggregator's EndDevice (/edev/0 when it registered none) carries the
    SubscriptionList for every device it manages; a managed device links none."""
    from edge.bridge.config import BridgeAggregator
    from tests.unit.test_bridge_core import edev

    agg, d1, other = "a9" * 20, "d1" * 20, "d2" * 20
    core, _, _ = make(aggregators=(BridgeAggregator("agg", agg), BridgeAggregator("o", other)))
    r = core.handle("POST", "/edev", {}, edev(d1, f"<lFDI>{d1.upper()}</lFDI>"), agg)
    assert r.status == 201
    lst = tree(get(core, "/edev", lfdi=agg, l="10"))
    mine, managed = lst.findall(f"{{{NS}}}EndDevice")
    assert mine.get("href") == "/edev/0" and mine.findtext(f"{{{NS}}}lFDI") == agg.upper()
    assert mine.find(f"{{{NS}}}SubscriptionListLink").get("href") == "/edev/0/sub"
    assert managed.find(f"{{{NS}}}SubscriptionListLink") is None
    assert tree(get(core, "/edev/0", lfdi=agg)).get("href") == "/edev/0"
    href = managed.get("href")
    for res in ("/edev", f"{href}/derp/1/derc"):
        r = core.handle("POST", "/edev/0/sub", {}, sub_doc(res), agg)
        assert r.status == 201 and r.location.startswith("/edev/0/sub/"), r
    refused(core, "POST", "/edev/0/sub", sub_doc("/edev/1/derp/1/derc"), agg)  # not managed
    assert core.handle("POST", f"{href}/sub", {}, sub_doc("/edev"), agg).status == 404
    assert tree(get(core, "/edev/0/sub", lfdi=agg)).get("all") == "2"
    # another aggregator sees none of them; a device has no /edev/0
    assert tree(get(core, "/edev/0/sub", lfdi=other)).get("all") == "0"
    assert core.handle("GET", "/edev/0/sub/1", {}, b"", other).status == 404
    assert core.handle("GET", "/edev/0", {}, b"", A).status == 404
    # the EndDeviceList notification is the list as the aggregator sees it
    first = etree.fromstring(core.server.outbox[0].body).find(f"{{{NS}}}Resource")
    assert [e.get("href") for e in first.findall(f"{{{NS}}}EndDevice")] == ["/edev/0", href]
