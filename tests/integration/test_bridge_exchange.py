"""A 2030.5 device written here talks to the bridge over real TLS and a real broker.

The client only follows hrefs it was given (DeviceCapability -> EndDevice -> ...), never takes
a shortcut into the server, and validates every document it receives against sep.xsd.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lxml import etree

from edge.bridge.config import BridgeConfig, BridgeDevice, BridgeTls
from edge.bridge.service import BridgeService
from edge.mqtt.client import BrokerSettings
from edge.mqtt.topics import Topics
from tests.integration.test_bridge_pki import CIPHER, Pki, make_pki, make_rogue
from tests.unit.test_bridge_xsd import assert_valid

pytestmark = pytest.mark.broker

NS = "urn:ieee:std:2030.5:ns"
SITE = "s1"
T = Topics(SITE)
FIXTURES = Path("/work/shared/fixtures/volttron-2030_5")
FIXTURE_LFDI = b"247bd68e3378fe57ba604e3c8bdf9e3f78a3d743"


@contextmanager
def running_bridge(cfg: BridgeConfig, broker: Any, **svc_kw: Any) -> Iterator[BridgeService]:
    """The bridge service on its own thread and event loop (the probe blocks its thread)."""
    settings = BrokerSettings(host=broker.host, port=broker.port, keepalive=5)
    holder: dict[str, Any] = {}
    started = threading.Event()

    def main() -> None:
        async def go() -> None:
            svc = BridgeService(SITE, settings, cfg, tick_s=0.05, **svc_kw)
            stop = asyncio.Event()
            holder.update(svc=svc, stop=stop, loop=asyncio.get_running_loop())
            task = asyncio.create_task(svc.run(stop))
            ready = asyncio.create_task(svc.ready.wait())
            try:
                await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ready.cancel()
                if task.done():
                    holder["error"] = task.exception() or RuntimeError("bridge stopped early")
                started.set()
            await task

        try:
            asyncio.run(go())
        except BaseException as exc:  # surfaced by the test below
            holder.setdefault("error", exc)
            started.set()

    th = threading.Thread(target=main, daemon=True)
    th.start()
    assert started.wait(15), "bridge did not start"
    if "error" in holder:
        raise holder["error"]
    try:
        yield holder["svc"]
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        th.join(10)
        assert not th.is_alive(), "bridge did not stop"


def bridge_cfg(pki: Pki, **kw: Any) -> BridgeConfig:
    cert, key = pki.server
    base = BridgeConfig(
        host="127.0.0.1",
        port=0,
        tls=BridgeTls(str(cert), str(key), str(pki.ca)),
        timezone="America/Los_Angeles",
        refresh_s=5,
    )
    return replace(base, **kw)


def q(el: etree._Element, path: str) -> etree._Element:
    found = el.find(path.replace("sep:", f"{{{NS}}}"))
    assert found is not None, f"{path} missing in {etree.tostring(el)[:300]!r}"
    return found


class Device2030:
    """A minimal 2030.5 client: GET/PUT/POST XML, validate every answer against sep.xsd."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.s = session
        self.base = base

    async def get(self, href: str, **query: Any) -> etree._Element:
        async with self.s.get(self.base + href, params=query or None) as r:
            body = await r.read()
            assert r.status == 200, (href, r.status, body)
            assert r.headers["Content-Type"].startswith("application/sep+xml")
        assert_valid(body)
        return etree.fromstring(body)

    async def status(
        self, method: str, href: str, xml: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/sep+xml"} if xml else {}
        async with self.s.request(method, self.base + href, data=xml or None, headers=headers) as r:
            body = await r.read()
            if body:
                assert_valid(body)
            return r.status, dict(r.headers), body


def negotiated(pki: Pki, name: str, port: int) -> tuple[str | None, str]:
    """What a device's TLS handshake with the bridge settles on."""
    ctx = pki.client_context(name)
    ctx.maximum_version = (
        ssl.TLSVersion.MAXIMUM_SUPPORTED
    )  # offer 1.3 too: the server must pick 1.2
    ctx.set_ciphers(f"{CIPHER}:ECDHE-ECDSA-AES128-GCM-SHA256")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        cipher = tls.cipher()
        assert cipher is not None
        return tls.version(), cipher[0]


def session_for(pki: Pki, name: str | None) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=pki.client_context(name)),
        timeout=aiohttp.ClientTimeout(total=5),
    )


def xml(root: str, body: str) -> bytes:
    return f'<{root} xmlns="{NS}">{body}</{root}>'.encode()


def uv(tag: str, mult: int, value: int) -> str:
    return f"<{tag}><multiplier>{mult}</multiplier><value>{value}</value></{tag}>"


def sv(tag: str, value: int) -> str:
    return f"<{tag}><dateTime>1</dateTime><value>{value}</value></{tag}>"


CAP = xml(
    "DERCapability",
    "<modesSupported>00000080</modesSupported>"
    + uv("rtgMaxChargeRateW", 3, 5)
    + uv("rtgMaxDischargeRateW", 3, 6)
    + uv("rtgMaxW", 3, 6)
    + uv("rtgMaxWh", 3, 13)
    + "<type>83</type>",
)
SETTINGS = xml(
    "DERSettings",
    "<setGradW>0</setGradW>"
    + uv("setMaxChargeRateW", 3, 5)
    + uv("setMaxW", 3, 6)
    + "<updatedTime>1</updatedTime>",
)
STATUS = xml(
    "DERStatus",
    sv("inverterStatus", 4) + "<readingTime>1</readingTime>" + sv("stateOfChargeStatus", 5420),
)
AVAIL = xml(
    "DERAvailability",
    "<availabilityDuration>7200</availabilityDuration><readingTime>1</readingTime>",
)
MMR = xml(
    "MirrorMeterReading",
    "<mRID>0A02</mRID><description>LineVoltageAvg</description>"
    "<Reading><value>8125</value></Reading>"
    "<ReadingType><powerOfTenMultiplier>-1</powerOfTenMultiplier><uom>29</uom></ReadingType>",
)


def soc_doc(hundredths: int) -> bytes:
    return xml("DERStatus", "<readingTime>1</readingTime>" + sv("stateOfChargeStatus", hundredths))


def mup_doc(mrid: str, lfdi: str) -> bytes:
    return xml(
        "MirrorUsagePoint",
        f"<mRID>{mrid}</mRID><roleFlags>03</roleFlags><serviceCategoryKind>0</serviceCategoryKind>"
        f"<status>1</status><deviceLFDI>{lfdi.upper()}</deviceLFDI>",
    )


def response_doc(status: int, subject: str, lfdi: str | None = None, created: int | None = None
                 ) -> bytes:  # fmt: skip
    body = "" if created is None else f"<createdDateTime>{created}</createdDateTime>"
    body += "" if lfdi is None else f"<endDeviceLFDI>{lfdi.upper()}</endDeviceLFDI>"
    return xml("DERControlResponse", f"{body}<status>{status}</status><subject>{subject}</subject>")


def edev_doc(sfdi: int, lfdi: str | None = None) -> bytes:
    lf = "" if lfdi is None else f"<lFDI>{lfdi.upper()}</lFDI>"
    return xml("EndDevice", f"{lf}<sFDI>{sfdi}</sFDI><changedTime>0</changedTime>")


async def register(dev: Device2030, lfdi: str, sfdi: int) -> tuple[etree._Element, str]:
    """Follow /dcap -> EndDeviceListLink, POST our EndDevice, GET the Location."""
    dcap = await dev.get("/dcap")
    edev_list = q(dcap, "sep:EndDeviceListLink").get("href")
    assert edev_list
    st, headers, _ = await dev.status("POST", edev_list, edev_doc(sfdi, lfdi))
    assert st == 201, st
    loc = headers["Location"]
    return await dev.get(loc), loc


def test_full_exchange_over_tls(tmp_path: Path, broker: Any, probe_factory: Any) -> None:
    pki = make_pki(tmp_path / "pki", "bat", "ev")
    cfg = bridge_cfg(
        pki,
        allow_registration=True,
        devices=(BridgeDevice("bat", pki.lfdi("bat"), pki.sfdi("bat"), 12345670),),
        default_control={"opModConnect": True},
    )
    probe = probe_factory(f"{T.root}/#")
    with running_bridge(cfg, broker) as svc:
        base = f"https://127.0.0.1:{svc.port}"
        probe.wait_for(T.bridge_status, lambda m: m.payload == b"online")

        async def scenario() -> None:
            async with session_for(pki, "bat") as s:
                dev = Device2030(s, base)
                # pre-registered: registering again is refused (CSIP-AUS S-ALL-51); the
                # device finds its EndDevice in the list instead
                again = edev_doc(pki.sfdi("bat"), pki.lfdi("bat"))
                assert (await dev.status("POST", "/edev", again))[0] == 409
                edev = await dev.get(q(await dev.get("/edev"), "sep:EndDevice").get("href") or "")
                assert int(q(edev, "sep:sFDI").text or 0) == pki.sfdi("bat")
                rg = await dev.get(q(edev, "sep:RegistrationLink").get("href") or "")
                assert q(rg, "sep:pIN").text == "12345670"
                tm = await dev.get(q(await dev.get("/dcap"), "sep:TimeLink").get("href") or "")
                assert int(q(tm, "sep:tzOffset").text or 0) == -8 * 3600
                # DER resources, by following the DER list
                der_list = await dev.get(q(edev, "sep:DERListLink").get("href") or "", l=10)
                der_ = q(der_list, "sep:DER")
                names = (
                    "DERCapabilityLink",
                    "DERSettingsLink",
                    "DERStatusLink",
                    "DERAvailabilityLink",
                )
                links = {k: q(der_, f"sep:{k}").get("href") or "" for k in names}
                for key, doc in zip(names, (CAP, SETTINGS, STATUS, AVAIL), strict=True):
                    href = links[key]
                    st, _, body = await dev.status("PUT", href, doc)
                    assert st == 204, (href, st, body)
                # served back, strictly in schema order (and validated by get())
                assert (
                    q(await dev.get(links["DERSettingsLink"]), "sep:setMaxW/sep:value").text == "6"
                )
                # mirror readings
                mup_list = (
                    q(await dev.get("/dcap"), "sep:MirrorUsagePointListLink").get("href") or ""
                )
                mup = mup_doc("0A01", pki.lfdi("bat"))
                st, headers, _ = await dev.status("POST", mup_list, mup)
                assert st == 201 and headers["Location"].startswith("/mup/")
                st, _, _ = await dev.status("POST", headers["Location"], MMR)
                assert st == 201
                assert await dev.get(headers["Location"]) is not None
                assert negotiated(pki, "bat", svc.port) == ("TLSv1.2", CIPHER)

        asyncio.run(scenario())
        # values on MQTT, with the seed's mapping (B11: SoC from stateOfChargeStatus)
        expect = {
            "120/MaxChaRte": 5000.0, "120/WRtg": 6000.0, "120/WHRtg": 13000.0, "121/WMax": 5000.0,
            "802/SoC": 54.2, "802/State": 3, "404/DCWh": 10000.0, "113/DCV": 812.5,
            "1/SN": str(pki.sfdi("bat")),
        }  # fmt: skip
        for suffix, value in expect.items():
            model, point = suffix.split("/")
            probe.wait_for(
                T.point("bat", model, point), lambda m, v=value: m.json() == v, timeout=5
            )
        probe.wait_for(T.status("bat"), lambda m: m.payload == b"online")
        meta = probe.wait_for(T.meta("bat")).json()
        assert meta["kind"] == "ieee2030_5" and meta["points"]["124/WChaMax"]["access"] == "RW"
        assert meta["identity"]["SN"] == str(pki.sfdi("bat")) and 802 in meta["models"]

        # control over MQTT -> DERControl the device GETs on its next poll (B10)
        reply = probe.request(T.set("bat", 124, "WChaMax"), {"value": 2500})
        assert reply["ok"] is True and reply["raw"] == -5000, reply
        first = reply["mrid"]
        reply0 = probe.request(T.set("bat", 124, "WChaMax"), {"value": 0})  # B12: 0 is sent
        assert reply0["ok"] is True and reply0["raw"] == 0 and reply0["superseded"] == [first]
        bad = probe.request(T.set("bat", 124, "WChaMax"), {"value": 9000})
        assert bad["ok"] is False and bad["error"]["code"] == "out_of_range"
        ro = probe.request(T.set("bat", 802, "SoC"), {"value": 1})
        assert ro["ok"] is False and ro["error"]["code"] == "not_writable"

        async def poll_and_respond() -> None:
            async with session_for(pki, "bat") as s:
                dev = Device2030(s, base)
                edev = await dev.get("/edev/1")
                fsa_list = await dev.get(
                    q(edev, "sep:FunctionSetAssignmentsListLink").get("href") or ""
                )
                fsa = q(fsa_list, "sep:FunctionSetAssignments")
                progs = await dev.get(q(fsa, "sep:DERProgramListLink").get("href") or "", l=10)
                prog = q(progs, "sep:DERProgram")
                derc = await dev.get(q(prog, "sep:DERControlListLink").get("href") or "", l=10)
                controls = {q(c, "sep:mRID").text: c for c in derc.findall(f"{{{NS}}}DERControl")}
                assert set(controls) == {first, reply0["mrid"]}
                now_c = controls[reply0["mrid"]]
                assert q(now_c, "sep:DERControlBase/sep:opModFixedW").text == "0"
                assert q(now_c, "sep:EventStatus/sep:currentStatus").text == "1"
                assert q(controls[first], "sep:EventStatus/sep:currentStatus").text == "4"
                act = await dev.get(q(prog, "sep:ActiveDERControlListLink").get("href") or "", l=10)
                assert [q(c, "sep:mRID").text for c in act.findall(f"{{{NS}}}DERControl")] == [
                    reply0["mrid"]
                ]
                dd = await dev.get(q(prog, "sep:DefaultDERControlLink").get("href") or "")
                assert q(dd, "sep:DERControlBase/sep:opModConnect").text == "true"
                reply_to = now_c.get("replyTo") or ""
                for status in (1, 2):
                    rsp = response_doc(status, reply0["mrid"], pki.lfdi("bat"), 1000 + status)
                    st, headers, _ = await dev.status("POST", reply_to, rsp)
                    assert st == 201 and headers["Location"].startswith(reply_to)
                st, _, body = await dev.status("POST", reply_to, response_doc(1, "F" * 32))
                assert st == 400 and b"<reasonCode>" in body

        asyncio.run(poll_and_respond())
        ev = probe.wait_for(T.events("bat"), lambda m: m.json()["status"] == 2)
        assert ev.json() == {"kind": "response", "subject": reply0["mrid"], "status": 2,
                             "createdDateTime": 1002}  # fmt: skip

        # richer control: a scheduled DERControl with randomization, then cancelled (not deleted)
        future = {"start": 4102444800, "duration": 600, "opModTargetW": -3000, "rampTms": 500}
        r = probe.request(T.derc("bat"), {**future, "randomizeStart": 30})
        assert r["ok"] is True and r["status"] == 0, r
        assert (
            probe.request(T.derc("bat"), {"duration": 5, "opModFixedFlow": 3})["error"]["code"]
            == "invalid_payload"
        )
        c = probe.request(T.derc("bat"), {"cancel": r["mrid"]})
        assert c["ok"] is True and c["status"] == 3  # cancelled with randomization

        async def see_cancelled() -> None:
            async with session_for(pki, "bat") as s:
                dev = Device2030(s, base)
                derc = await dev.get("/edev/1/derp/1/derc", l=10)
                got = {q(x, "sep:mRID").text: q(x, "sep:EventStatus/sep:currentStatus").text
                       for x in derc.findall(f"{{{NS}}}DERControl")}  # fmt: skip
                assert got[r["mrid"]] == "3"
                ctl = await dev.get(f"/edev/1/derp/1/derc/{r['mrid']}")
                assert q(ctl, "sep:DERControlBase/sep:opModTargetW/sep:value").text is not None

        asyncio.run(see_cancelled())
    probe.wait_for(T.status("bat"), lambda m: m.payload == b"offline")
    probe.wait_for(T.bridge_status, lambda m: m.payload == b"offline")


def test_isolation_between_two_devices(tmp_path: Path, broker: Any, probe_factory: Any) -> None:
    pki = make_pki(tmp_path / "pki", "a", "b")
    dev_a = BridgeDevice("dev-a", pki.lfdi("a"), pki.sfdi("a"), None)
    cfg = bridge_cfg(pki, allow_registration=True, devices=(dev_a,))
    probe = probe_factory(f"{T.root}/#")
    with running_bridge(cfg, broker) as svc:
        base = f"https://127.0.0.1:{svc.port}"

        async def scenario() -> None:
            async with session_for(pki, "a") as sa, session_for(pki, "b") as sb:
                a, b = Device2030(sa, base), Device2030(sb, base)
                # a is pre-registered: it finds its EndDevice in the list
                loc_a = q(await a.get("/edev"), "sep:EndDevice").get("href") or ""
                # b registers itself (registration open): a new device, its own name
                _, loc_b = await register(b, pki.lfdi("b"), pki.sfdi("b"))
                assert loc_a != loc_b
                # b cannot register under a's identity
                st, _, body = await b.status("POST", "/edev", edev_doc(pki.sfdi("a")))
                assert st == 409 and b"reasonCode" in body
                # each sees only itself
                lst = await b.get("/edev", l=10)
                assert lst.get("all") == "1" and q(lst, "sep:EndDevice").get("href") == loc_b
                for href in (loc_a, f"{loc_a}/der/1/derg", f"{loc_a}/derp/1/derc", f"{loc_a}/rg"):
                    st, _, _ = await b.status("GET", href)
                    assert st in (403, 404), (href, st)
                st, _, _ = await b.status("PUT", f"{loc_a}/der/1/ders", soc_doc(100))
                assert st in (403, 404)
                mup = mup_doc("0B01", pki.lfdi("a"))
                st, headers, _ = await a.status("POST", "/mup", mup)
                assert st == 201
                st, _, _ = await b.status("GET", headers["Location"])
                assert st == 404
                pfa = MMR.replace(b"LineVoltageAvg", b"PhasePFA")
                st, _, _ = await b.status("POST", headers["Location"], pfa)
                assert st == 404
                assert (await b.get("/mup", l=10)).get("all") == "0"
                # b's own values land on b's topics only
                st, _, _ = await b.status("PUT", f"{loc_b}/der/1/ders", soc_doc(3300))
                assert st == 204

        asyncio.run(scenario())
        name_b = f"edev-{pki.sfdi('b')}"
        probe.wait_for(T.point(name_b, 802, "SoC"), lambda m: m.json() == 33.0)
        assert probe.latest(T.point("dev-a", 802, "SoC")) is None
        assert probe.latest(T.point("dev-a", 113, "PF")) is None
        probe.wait_for(T.status(name_b), lambda m: m.payload == b"online")


def test_refused_clients(tmp_path: Path, broker: Any) -> None:
    pki = make_pki(tmp_path / "pki", "known", "stranger")
    make_rogue(pki, "rogue")
    cfg = bridge_cfg(
        pki, devices=(BridgeDevice("known", pki.lfdi("known"), pki.sfdi("known"), None),)
    )
    with running_bridge(cfg, broker) as svc:
        base = f"https://127.0.0.1:{svc.port}"

        async def scenario() -> None:
            async with session_for(pki, "known") as s:
                assert (await Device2030(s, base).get("/dcap")) is not None
            async with session_for(pki, "stranger") as s:  # valid CA, not registered, closed
                st, _, _ = await Device2030(s, base).status("GET", "/dcap")
                assert st == 403
                st, _, _ = await Device2030(s, base).status(
                    "POST", "/edev", edev_doc(pki.sfdi("stranger"))
                )
                assert st == 403
            for name in (None, "rogue"):  # no certificate / untrusted CA: the handshake fails
                async with session_for(pki, name) as s:
                    with pytest.raises(aiohttp.ClientError):
                        await Device2030(s, base).status("GET", "/dcap")
            # plain HTTP to the TLS port gets nothing
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as s:
                with pytest.raises(aiohttp.ClientError):
                    async with s.get(f"http://127.0.0.1:{svc.port}/dcap") as r:
                        await r.read()
                        raise aiohttp.ClientError(f"answered {r.status}")
            # huge and hostile bodies
            async with session_for(pki, "known") as s:
                dev = Device2030(s, base)
                st, _, _ = await dev.status("PUT", "/edev/1/di", b"<a>" + b"x" * 200_000 + b"</a>")
                assert st == 413
                laughs = (
                    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
                    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
                    b"<DeviceStatus><changedTime>&b;</changedTime></DeviceStatus>"
                )
                st, _, body = await dev.status("PUT", "/edev/1/dstat", laughs)
                assert st == 400 and b"<reasonCode>0</reasonCode>" in body
                assert (await dev.get("/tm")) is not None  # still serving

        asyncio.run(scenario())


FIXTURE_ROUTES = [
    ("edev.di.PUT.xml", "PUT", "/edev/1/di"),
    ("edev.dstat.PUT.xml", "PUT", "/edev/1/dstat"),
    ("edev.ps.PUT.xml", "PUT", "/edev/1/ps"),
    ("der.dercap.PUT.xml", "PUT", "/edev/1/der/1/dercap"),
    ("der.derg.PUT.xml", "PUT", "/edev/1/der/1/derg"),
    ("der.ders.PUT.xml", "PUT", "/edev/1/der/1/ders"),
    ("der.dera.PUT.xml", "PUT", "/edev/1/der/1/dera"),
    ("mup.mup.PUT.xml", "POST", "/mup"),
    ("mup.mup2.PUT.xml", "POST", "/mup"),
    ("mup.mmr.PUT.xml", "POST", "/mup/1"),
]

# What the original's documents mean under the seed table, multipliers applied.
FIXTURE_VALUES: dict[str, Any] = {
    "1/Md": "Mf Model", "1/Opt": "5509D69F8B353595206AD71B47E27906318EA367", "1/Vr": "MF-HW: 1.0.0",
    "404/DCW": 3000.0,
    "120/AhrRtg": 350.0, "120/ARtg": 330.0, "120/MaxChaRte": 220.0, "120/MaxDisChaRte": 10.0,
    "120/WHRtg": 1230.0, "120/WRtg": 10.0,
    "121/WMax": 20.0,  # setMaxChargeRate {1, 2}
    # 777 is no defined inverterStatus / localControlModeStatus, and no HexBinary8: null
    "802/SoC": 7.77, "802/State": None, "802/LocRemCtl": None, "122/StorConn": None,
    "404/DCWh": round(55036 / 3600 * 20.0, 6),
    "113/DCA": 125.0, "113/DCV": 125.0, "113/DCW": 125.0, "113/PF": 126.0, "113/WH": 127.0,
    "403/Tmp": 128000.0,  # the fixture's ReadingType says powerOfTenMultiplier 3
    "122/ActWh": 128.0, "113/A": 24.0,
}  # fmt: skip


@pytest.mark.skipif(not FIXTURES.exists(), reason="the original's fixtures are not on this machine")
def test_original_fixtures_land_on_the_right_topics(
    tmp_path: Path, broker: Any, probe_factory: Any
) -> None:
    pki = make_pki(tmp_path / "pki", "legacy")
    cfg = bridge_cfg(
        pki,
        devices=(BridgeDevice("legacy", pki.lfdi("legacy"), pki.sfdi("legacy"), None, True),),
    )
    probe = probe_factory(f"{T.root}/legacy/#")
    with running_bridge(cfg, broker) as svc:
        base = f"https://127.0.0.1:{svc.port}"

        async def scenario() -> None:
            async with session_for(pki, "legacy") as s:
                dev = Device2030(s, base)
                for name, method, href in FIXTURE_ROUTES:
                    doc = (FIXTURES / name).read_bytes()
                    # a usage point names its device: the fixture's, here this certificate's
                    doc = doc.replace(FIXTURE_LFDI, pki.lfdi("legacy").encode())
                    st, _, body = await dev.status(method, href, doc)
                    assert st in (201, 204), (name, st, body)

        asyncio.run(scenario())
        for suffix, value in FIXTURE_VALUES.items():
            model, point = suffix.split("/")
            probe.wait_for(
                T.point("legacy", model, point), lambda m, v=value: m.json() == v, timeout=5
            )
