"""Notifications over TLS to real HTTPS endpoints: delivered, retried with backoff, counted when
they fail, and a dead endpoint never holds up the others or the server."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from lxml import etree

from edge.bridge.config import BridgeDevice
from edge.bridge.notify import Notifier, NotifySettings, client_context
from edge.bridge.pki import Pki
from edge.bridge.state import Notification
from edge.mosquitto import free_port
from tests.integration.test_bridge_exchange import (
    NS,
    Device2030,
    T,
    bridge_cfg,
    running_bridge,
    session_for,
    xml,
)
from tests.integration.test_bridge_pki import make_pki

pytestmark = pytest.mark.broker


class Webhook:
    """An HTTPS endpoint (the test CA's server certificate) that records what it receives;
    `fail_first` answers 500 that many times first. It requires a client certificate."""

    def __init__(self, pki: Pki, fail_first: int = 0) -> None:
        self.pki = pki
        self.fail_first = fail_first
        self.received: list[tuple[float, bytes]] = []
        self.port = free_port("127.0.0.1")
        self.url = f"https://127.0.0.1:{self.port}/notify"

    @contextmanager
    def running(self) -> Iterator[Webhook]:
        ready, stop = threading.Event(), threading.Event()

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            if self.fail_first > 0:
                self.fail_first -= 1
                return web.Response(status=500)
            self.received.append((time.monotonic(), body))
            return web.Response(status=204)

        def main() -> None:
            async def go() -> None:
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.pki.ca))
                ctx.load_cert_chain(*map(str, self.pki.server))
                ctx.verify_mode = ssl.CERT_REQUIRED
                app = web.Application()
                app.router.add_post("/notify", handle)
                runner = web.AppRunner(app)
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", self.port, ssl_context=ctx).start()
                ready.set()
                while not stop.is_set():
                    await asyncio.sleep(0.02)
                await runner.cleanup()

            asyncio.run(go())

        th = threading.Thread(target=main, daemon=True)
        th.start()
        assert ready.wait(5)
        try:
            yield self
        finally:
            stop.set()
            th.join(5)


def sub_doc(resource: str, uri: str) -> bytes:
    return xml(
        "Subscription",
        f"<subscribedResource>{resource}</subscribedResource><encoding>0</encoding>"
        f"<level>+S1</level><limit>5</limit><notificationURI>{uri}</notificationURI>",
    )


def wait(pred: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_notifications_delivered_retried_and_counted(
    tmp_path: Path, broker: Any, probe_factory: Any
) -> None:
    pki = make_pki(tmp_path / "pki", "bat")
    cfg = bridge_cfg(pki, devices=(BridgeDevice("bat", pki.lfdi("bat"), pki.sfdi("bat"), None),))
    fast = NotifySettings(attempts=3, backoff_s=0.1, timeout_s=1.0, workers=2)
    probe = probe_factory(f"{T.root}/#")
    good, flaky = Webhook(pki), Webhook(pki, fail_first=2)
    dead = f"https://127.0.0.1:{free_port('127.0.0.1')}/notify"  # nobody listens
    with good.running(), flaky.running(), running_bridge(cfg, broker, notify_settings=fast) as svc:
        base = f"https://127.0.0.1:{svc.port}"

        async def subscribe() -> None:
            async with session_for(pki, "bat") as s:
                dev = Device2030(s, base)
                for uri in (dead, good.url, flaky.url):
                    st, headers, _ = await dev.status(
                        "POST", "/edev/1/sub", sub_doc("/edev/1/derp/1/derc", uri)
                    )
                    assert st == 201 and headers["Location"].startswith("/edev/1/sub/")

        asyncio.run(subscribe())
        stats = svc.notifier.stats
        # each new subscription first gets the list as it is (the flaky one after two 500s)
        wait(lambda: len(good.received) == len(flaky.received) == 1 and stats["pending"] == 0)
        assert stats["failed"] == 1
        assert stats["sent"] == 2 and stats["retried"] == 2 + 2, stats
        good.received.clear()
        flaky.received.clear()
        flaky.fail_first = 2
        before = dict(stats)
        t0 = time.monotonic()
        r = probe.request(T.derc("bat"), {"duration": 600, "opModExpLimW": 2000})
        assert r["ok"], r
        wait(lambda: good.received)
        assert good.received[0][0] - t0 < 1.5  # not held up by the dead endpoint's retries
        doc = etree.fromstring(good.received[0][1])
        assert doc.find(f"{{{NS}}}Resource/{{{NS}}}DERControl/{{{NS}}}mRID").text == r["mrid"]
        # absolute, under the port the bridge bound (port 0 in the config)
        assert doc.findtext(f"{{{NS}}}subscriptionURI") == f"{base}/edev/1/sub/2"
        wait(lambda: flaky.received, timeout=5)  # after two 500s and two backoffs
        # the dead one: 3 attempts, then counted; everything accounted for
        wait(lambda: stats["failed"] == 2 and stats["pending"] == 0, timeout=8)
        assert stats["sent"] - before["sent"] == 2, stats
        assert stats["retried"] - before["retried"] == 2 + 2, stats
        # the HTTP side stayed responsive throughout
        notes = probe.request(T.bridge_admin("stats"), {})["notifications"]
        assert notes["failed"] == 2 and notes["pending"] == 0


def test_default_retries_outlast_a_five_minute_communication_loss() -> None:
    s = NotifySettings()
    waits = [min(s.backoff_s * 2**k, s.backoff_max_s) for k in range(s.attempts - 1)]
    assert sum(waits) > 6 * 60  # cactus S-ALL-46: the endpoint is away for 300 s
    assert max(waits) <= s.backoff_max_s


async def until(pred: Any, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not pred():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def test_a_retry_waits_outside_the_workers_and_a_newer_notification_supersedes_it(
    tmp_path: Path,
) -> None:
    pki = make_pki(tmp_path / "pki", "bat")
    good, flaky = Webhook(pki), Webhook(pki, fail_first=1)
    dead = f"https://127.0.0.1:{free_port('127.0.0.1')}/notify"  # nobody listens
    one = NotifySettings(attempts=3, backoff_s=1.0, backoff_max_s=1.0, timeout_s=1.0, workers=1)

    async def run() -> Notifier:
        notifier = Notifier(client_context(bridge_cfg(pki).tls), one)
        await notifier.start()
        try:
            t0 = time.monotonic()
            notifier.submit(Notification(dead, b"<dead/>", "/edev/1/sub/1"))
            notifier.submit(Notification(good.url, b"<good/>", "/edev/1/sub/2"))
            await until(lambda: good.received)
            # one worker, yet not held up by the dead endpoint's 1 s backoff
            assert good.received[0][0] - t0 < 0.9
            notifier.submit(Notification(flaky.url, b"<old/>", "/edev/1/sub/3"))
            await until(lambda: notifier.stats["retried"] >= 2)  # the dead one's, the old one's
            notifier.submit(Notification(flaky.url, b"<new/>", "/edev/1/sub/3"))
            assert notifier.stats["pending"] == 3  # the dead one, the old one, the new one
            await notifier.drain(10)
        finally:
            await notifier.stop()
        return notifier

    with good.running(), flaky.running():
        notifier = asyncio.run(run())
    assert [b for _, b in flaky.received] == [b"<new/>"]  # never the stale one after it
    assert notifier.stats["superseded"] == 1
    assert notifier.stats["failed"] == 1 and notifier.stats["sent"] == 2, notifier.stats
    assert notifier.stats["pending"] == 0  # each one accounted for once
