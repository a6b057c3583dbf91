"""Deliver 2030.5 Notifications: POST to each subscription's notificationURI over TLS.

A bounded queue and a few worker tasks: `submit()` never blocks (a full queue drops the newest
and counts it), each POST has a timeout, failures are retried with exponential backoff (capped)
for about ten minutes, and what happened is counted in `stats` (sent, retried, failed, dropped,
superseded) and logged. A retry waits outside the workers, so one slow or dead endpoint delays
only its own notifications; a retry is dropped once a newer notification for the same
subscription was queued (that one carries the resource as it is now).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from edge.bridge.config import BridgeTls
from edge.bridge.models import CONTENT_TYPE
from edge.bridge.state import Notification

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NotifySettings:
    attempts: int = 16  # first try + retries: about 10 minutes, a communication loss outlasts
    backoff_s: float = 1.0  # then 2, 4, ... seconds
    backoff_max_s: float = 60.0  # ... at most this between attempts
    timeout_s: float = 5.0  # per POST
    queue: int = 1000
    workers: int = 4


def client_context(tls: BridgeTls | None) -> ssl.SSLContext:
    """TLS 1.2+, the bridge's certificate as client certificate, the device CA trusted."""
    if tls is None:
        return ssl.create_default_context()
    ctx = ssl.create_default_context(cafile=tls.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    return ctx


class Notifier:
    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        settings: NotifySettings = NotifySettings(),
        sleep: Callable[[float], asyncio.Future[None]] | None = None,
    ) -> None:
        self.ssl = ssl_context
        self.settings = settings
        self.queue: asyncio.Queue[Notification] = asyncio.Queue(settings.queue)
        # pending: submitted and not yet sent, failed, superseded or dropped (a gauge)
        self.stats = {"sent": 0, "retried": 0, "failed": 0, "dropped": 0, "superseded": 0,
                      "pending": 0}  # fmt: skip
        self._sleep = sleep or asyncio.sleep
        self._tasks: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.Task[None]] = set()
        self._latest: dict[str, Notification] = {}  # per subscription: the newest queued
        self._attempt: dict[int, tuple[int, float]] = {}  # id(n) -> (attempts made, next delay)
        self._session: aiohttp.ClientSession | None = None

    def submit(self, n: Notification) -> bool:
        """Queue a notification; False (and counted) if the queue is full. Never blocks."""
        try:
            self.queue.put_nowait(n)
        except asyncio.QueueFull:
            self.stats["dropped"] += 1
            log.warning("notification queue full: dropped one for %s", n.subscription)
            return False
        self._latest[n.subscription] = n
        self.stats["pending"] += 1
        return True

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl, limit=self.settings.workers * 2),
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
        )
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.settings.workers)]

    async def stop(self) -> None:
        for t in [*self._tasks, *self._retries]:
            t.cancel()
        for t in [*self._tasks, *self._retries]:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._session is not None:
            await self._session.close()

    async def drain(self, timeout: float) -> None:
        """Wait (at most `timeout`) until everything queued was delivered or given up."""

        async def idle() -> None:
            while True:
                await self.queue.join()
                if not self._retries:
                    return
                await asyncio.wait(set(self._retries))

        await asyncio.wait_for(idle(), timeout)

    async def _work(self) -> None:
        while True:
            n = await self.queue.get()
            try:
                await self._deliver(n)
            finally:
                self.queue.task_done()

    async def _deliver(self, n: Notification) -> None:
        assert self._session is not None
        made, delay = self._attempt.pop(id(n), (0, self.settings.backoff_s))
        if self._latest.get(n.subscription) is not n:
            self._done("superseded")  # a newer one for this subscription is queued
            return
        made += 1
        try:
            async with self._session.post(
                n.uri, data=n.body, headers={"Content-Type": CONTENT_TYPE}
            ) as r:
                await r.read()
                if 200 <= r.status < 300:
                    self._done("sent", n)
                    return
                why = f"HTTP {r.status}"
        except (aiohttp.ClientError, TimeoutError, OSError, ssl.SSLError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        if made >= self.settings.attempts:
            self._done("failed", n)
            log.warning("notification for %s to %s failed after %d attempts: %s",
                        n.subscription, n.uri, made, why)  # fmt: skip
            return
        self.stats["retried"] += 1
        self._attempt[id(n)] = (made, min(delay * 2, self.settings.backoff_max_s))
        t = asyncio.create_task(self._retry_later(n, delay))
        self._retries.add(t)
        t.add_done_callback(self._retries.discard)

    async def _retry_later(self, n: Notification, delay: float) -> None:
        """Wait out the backoff outside the workers, then queue the notification again."""
        await self._sleep(delay)
        try:
            self.queue.put_nowait(n)
        except asyncio.QueueFull:
            self._attempt.pop(id(n), None)
            self._done("dropped", n)
            log.warning("notification queue full: dropped a retry for %s", n.subscription)

    def _done(self, outcome: str, n: Notification | None = None) -> None:
        self.stats[outcome] += 1
        self.stats["pending"] -= 1
        if n is not None and self._latest.get(n.subscription) is n:
            del self._latest[n.subscription]
