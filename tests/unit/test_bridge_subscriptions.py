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
    assert core.scan_notifications() == 0  # nothing changed yet
    r = core.control("bat", "derc", {"start": int(clock.t) + 10, "duration": 60,
                                     "opModExpLimW": 1000})  # fmt: skip
    out = core.server.outbox
    assert len(out) == 1 and out[0].uri == "https://127.0.0.1:9/notify"
    doc = etree.fromstring(out[0].body)
    assert_valid(out[0].body)
    res = doc.find(f"{{{NS}}}Resource")
    assert res.get(f"{{{XSI}}}type") == "DERControlList"
    assert res.find(f"{{{NS}}}DERControl/{{{NS}}}mRID").text == r["mrid"]
    assert doc.findtext(f"{{{NS}}}subscriptionURI") == "/edev/1/sub/1"
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


def test_default_control_change_notifies_its_subscribers_only() -> None:
    core, _, _ = make()
    core.handle("POST", "/edev/1/sub", {}, sub_doc("/edev/1/derp/1/dderc"), A)
    core.handle("POST", "/edev/1/sub", {}, sub_doc("/edev/1/fsa"), A)
    core.control("bat", "dderc", {"opModExpLimW": 500, "setGradW": 10})
    assert [n.subscription for n in core.server.outbox] == ["/edev/1/sub/1"]
    kind = etree.fromstring(core.server.outbox[0].body).find(f"{{{NS}}}Resource")
    assert kind.get(f"{{{XSI}}}type") == "DefaultDERControl"
    core.control("bat", "dderc", {"primacy": 4, "opModExpLimW": 1})  # a new program: fsa list
    assert [n.subscription for n in core.server.outbox][-1] == "/edev/1/sub/2"
