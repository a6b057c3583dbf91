"""Fuzzed 2030.5 XML bodies (issue 6, section 4): malformed, wrong namespace, huge, entity
expansion (billion laughs) and external entities (file:// and http://), in UTF-8 and in the
encodings a byte-level DTD check does not see (UTF-16, UTF-32).

tests/unit/test_bridge_xml.py fuzzes parse_tree with random bytes and BridgeCore with random
element trees; this file builds *hostile* documents on purpose and sends them through the
parser, through BridgeCore on every writable resource, and through the real HTTPS server
(TLS 1.2 with a client certificate). Invariants: only XmlError from the parser; every request
answered with a status (400 with an Error body for a bad document); never a 2xx for a document
with a DTD; no file content in any tree; no network fetch (a trap listener counts connections).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from edge.bridge.config import BridgeDevice
from edge.bridge.core import BridgeCore
from edge.bridge.identity import sfdi_from_lfdi
from edge.bridge.models import LEGACY_NS, NS
from edge.bridge.xmlcodec import MAX_XML_BYTES, XmlError, parse_tree
from tests.reliability.fuzz_cases import count, live_batch_settings, report, scaled
from tests.unit.test_bridge_core import A, make

SECRET = "fuzz-secret-7f3a9c"
XI = "http://www.w3.org/2001/XInclude"  # content of the local file an external entity points at


class NetTrap:
    """A listener that only counts connections: any fetch of an http:// entity shows up here."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def trap() -> Iterator[NetTrap]:
    t = NetTrap()
    try:
        yield t
    finally:
        t.close()


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("xxe") / "secret.txt"
    p.write_text(SECRET)
    return p


# -- hostile documents ----------------------------------------------------------------------------
ROOTS = [
    "DERSettings",
    "DERStatus",
    "DERCapability",
    "DERAvailability",
    "DeviceStatus",
    "DeviceInformation",
    "PowerStatus",
    "EndDevice",
    "MirrorUsagePoint",
    "Response",
]
CHILD = {
    "DERSettings": "setMaxW",
    "DERStatus": "readingTime",
    "DERCapability": "modesSupported",
    "DERAvailability": "readingTime",
    "DeviceStatus": "changedTime",
    "DeviceInformation": "mfModel",
    "PowerStatus": "changedTime",
    "EndDevice": "sFDI",
    "MirrorUsagePoint": "mRID",
    "Response": "subject",
}
LAUGHS = '<!ENTITY lol "lol">' + "".join(
    f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "&lol;") * 10}">' for i in range(1, 10)
)


def _prologs(trap_port: int, secret: Path) -> st.SearchStrategy[tuple[str, str]]:
    """(DTD prolog, entity reference to put in the body)."""
    return st.sampled_from(
        [
            ("", ""),
            (f"<!DOCTYPE r [{LAUGHS}]>", "&lol9;"),
            (f'<!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>', "&x;"),
            ('<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>', "&x;"),
            (f'<!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:{trap_port}/x">]>', "&x;"),
            (f'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:{trap_port}/p"> %p;]>', ""),
            (f'<!DOCTYPE r SYSTEM "http://127.0.0.1:{trap_port}/r.dtd">', ""),
            (f'<!DOCTYPE r PUBLIC "-//X//EN" "file://{secret}">', ""),
            ('<!DOCTYPE r [<!ENTITY a "&#38;#38;">]>', "&a;"),
            ("<!DOCTYPE r>", ""),
            ("", "&undefined;"),
            ("", "&#49;&#x32;"),
            (f'<?xml-stylesheet href="http://127.0.0.1:{trap_port}/s"?>', ""),
            ("", f'<xi:include xmlns:xi="{XI}" href="file://{secret}" parse="text"/>'),
            ("", "<![CDATA[<x>&lol;</x>]]>"),
            ("<!-- comment -->", "<!-- inner -->"),
        ]
    )


namespaces = st.sampled_from([NS, LEGACY_NS, None, "urn:evil", "", "http://www.w3.org/1999/xhtml"])
texts = st.one_of(
    st.sampled_from(
        [
            "",
            "1",
            "-5",
            "abc",
            "99999999999999999999",
            "1" * 5000,
            "1e400",
            "0x10",
            "NaN",
            " 7 ",
            "\u00e9",
            "-0",
        ]
    ),
    st.text(max_size=30).map(lambda s: s.replace("<", "&lt;").replace("&", "&amp;")),
)
encodings = st.sampled_from(["utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1"])


@st.composite
def hostile_docs(draw: st.DrawFn, trap_port: int, secret: Path) -> tuple[bytes, bool]:
    """A document and whether it carries a DTD (which must never be accepted)."""
    root = draw(st.sampled_from(ROOTS))
    prolog, ref = draw(_prologs(trap_port, secret))
    ns = draw(namespaces)
    xmlns = "" if ns is None else f' xmlns="{ns}"'
    child = CHILD[root]
    shape = draw(st.sampled_from(["plain", "deep", "wide", "attrs", "huge_text", "truncated"]))
    inner = f"<{child}>{draw(texts)}{ref}</{child}>"
    if shape == "deep":
        n = draw(st.integers(10, 400))
        inner = "<a>" * n + inner + "</a>" * n
    elif shape == "wide":
        inner = inner * draw(st.integers(2, 3000))
    elif shape == "attrs":
        inner = (
            f"<{child} "
            + " ".join(f'a{i}="{i}"' for i in range(draw(st.integers(1, 2000))))
            + ">1</"
            + child
            + ">"
        )
    elif shape == "huge_text":
        inner = f"<{child}>" + "9" * draw(st.integers(1000, MAX_XML_BYTES + 10)) + f"</{child}>"
    enc = draw(encodings)
    decl = draw(st.booleans())
    head = (
        f'<?xml version="1.0" encoding="{enc.upper().replace("-LE", "").replace("-BE", "")}"?>'
        if decl
        else ""
    )
    text = f"{head}{prolog}<{root}{xmlns}>{inner}</{root}>"
    try:
        data = text.encode(enc)
    except UnicodeEncodeError:
        data = text.encode("utf-8")
    if shape == "truncated":
        data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    return data, "<!DOCTYPE" in prolog


ROUTES = [
    ("PUT", "/edev/1/der/1/derg"),
    ("PUT", "/edev/1/der/1/ders"),
    ("PUT", "/edev/1/der/1/dercap"),
    ("PUT", "/edev/1/der/1/dera"),
    ("PUT", "/edev/1/di"),
    ("PUT", "/edev/1/dstat"),
    ("PUT", "/edev/1/ps"),
    ("POST", "/mup"),
    ("POST", "/edev"),
    ("POST", "/edev/1/rsp"),
]
ANSWERS = {201, 204, 400, 404, 405, 409}


def _check_error_body(body: bytes) -> None:
    err = etree.fromstring(body)
    assert etree.QName(err).localname == "Error" and etree.QName(err).namespace == NS, body[:200]
    assert err.find(f"{{{NS}}}reasonCode") is not None, body[:200]


@settings(
    max_examples=scaled(300),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), route=st.sampled_from(ROUTES))
def test_hostile_documents_through_parser_and_core(
    trap: NetTrap, secret_file: Path, data: st.DataObject, route: tuple[str, str]
) -> None:
    count("xml_parser_and_core")
    doc, has_dtd = data.draw(hostile_docs(trap.port, secret_file), label="doc")
    try:
        tree = parse_tree(doc)
    except XmlError as exc:
        assert str(exc).strip()
    else:
        assert not has_dtd, "a document with a DTD was accepted by the parser"
        dumped = etree.tostring(tree)
        assert SECRET.encode() not in dumped and b"root:x:" not in dumped
        assert len(dumped) <= 4 * len(doc) + 500, "the tree grew: something was expanded"
    core, rec, _ = make()
    method, path = route
    r = core.handle(method, path, {}, doc, A)
    assert r.status in ANSWERS, (route, r.status)
    if has_dtd:
        assert r.status == 400, (route, r.status, doc[:200])
    if r.status == 400:
        _check_error_body(r.body)
    assert SECRET not in repr(rec.values) and SECRET not in repr(rec.events)
    assert trap.hits == 0, "the parser fetched a URL"


# -- through the real HTTPS server ---------------------------------------------------------------
def _https_requests(trap_port: int, secret: Path) -> st.SearchStrategy[Any]:
    return st.lists(
        st.tuples(hostile_docs(trap_port, secret), st.sampled_from(ROUTES)), min_size=4, max_size=8
    )


def test_hostile_documents_over_https(tmp_path: Path, trap: NetTrap, secret_file: Path) -> None:
    import aiohttp

    from edge.bridge.config import BridgeConfig, BridgeTls
    from edge.bridge.http import make_ssl_context, start_server
    from tests.integration.test_bridge_pki import make_pki
    from tests.unit.test_bridge_core import Recorder

    pki = make_pki(tmp_path, "dev")
    lfdi = pki.lfdi("dev")
    cert, key = pki.server
    cfg = BridgeConfig(
        host="127.0.0.1",
        port=0,
        tls=BridgeTls(str(cert), str(key), str(pki.ca)),
        devices=(BridgeDevice("bat", lfdi, sfdi_from_lfdi(lfdi), 1234),),
    )
    rec = Recorder()
    core = BridgeCore(cfg, time.time, rec)
    core.start()
    assert cfg.tls is not None
    ctx = make_ssl_context(cfg.tls)
    batches: list[list[tuple[tuple[bytes, bool], tuple[str, str]]]] = []

    @live_batch_settings(4)
    @given(_https_requests(trap.port, secret_file))
    def collect(batch: list[tuple[tuple[bytes, bool], tuple[str, str]]]) -> None:
        batches.append(batch)

    collect()
    cases = [c for b in batches for c in b]
    big = b'<DeviceStatus xmlns="urn:ieee:std:2030.5:ns"><changedTime>' + b"1" * 200_000
    cases.append(((big, False), ("PUT", "/edev/1/dstat")))

    async def main() -> None:
        runner, port = await start_server(core, cfg, ctx)
        base = f"https://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=pki.client_context("dev")),
                timeout=aiohttp.ClientTimeout(total=5),
            ) as s:
                for (doc, has_dtd), (method, path) in cases:
                    count("xml_https")
                    headers = {"Content-Type": "application/sep+xml"}
                    async with s.request(method, base + path, data=doc, headers=headers) as r:
                        body = await r.read()
                        assert r.status in ANSWERS | {413}, (path, r.status, body[:200])
                        if has_dtd:  # refused: as a bad document, or as too big to read
                            assert r.status in (400, 413), (path, r.status, doc[:200])
                        if r.status == 400:
                            _check_error_body(body)
                        if len(doc) > cfg.max_body_bytes:
                            assert r.status in (400, 413), r.status
                # the server still serves a well-behaved device
                async with s.get(base + "/dcap") as r:
                    assert r.status == 200
        finally:
            await runner.cleanup()

    asyncio.run(asyncio.wait_for(main(), 60))
    assert SECRET not in repr(rec.values) and SECRET not in repr(rec.events)
    assert trap.hits == 0


def test_zz_report_counts() -> None:
    report(__name__)
