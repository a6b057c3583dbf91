"""The recorder: subscribes to the site's tree and writes telemetry, state and events to the
history database in batches (one transaction per `flush_s`), and compacts it now and then.

`Recorder` (pure, no I/O) turns messages into samples and events; `RecorderService` is the
shell: MQTT in, a thread for SQLite so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from edge.history import tree
from edge.history.config import HistoryConfig
from edge.history.store import Event, HistoryStore, Sample
from edge.mqtt import jsonutil
from edge.mqtt.client import BrokerSettings, Message, MqttClient
from edge.mqtt.topics import Topics

log = logging.getLogger(__name__)
OPEN_RETRY_S = 10.0
MAX_PENDING = 200_000  # samples held while the disk is slow; beyond this the oldest are dropped


class Recorder:
    """Pending samples and events, coalesced per series and second (the last value wins)."""

    def __init__(self, site: str, cfg: HistoryConfig, clock: Callable[[], float] = time.time):
        self.root = Topics(site).root
        self.cfg = cfg
        self.clock = clock
        self.samples: dict[tuple[str, int], float] = {}
        self.events: list[Event] = []
        self.dropped = 0
        self._last_state: dict[str, Any] | None = None
        self._status: dict[str, str] = {}
        self._wanted: dict[str, bool] = {}

    def wanted(self, key: str) -> bool:
        hit = self._wanted.get(key)
        if hit is None:
            hit = any(fnmatch.fnmatchcase(key, p) for p in self.cfg.record) and not any(
                fnmatch.fnmatchcase(key, p) for p in self.cfg.skip
            )
            if len(self._wanted) < 100_000:
                self._wanted[key] = hit
        return hit

    def add(self, key: str, t: float, v: float) -> None:
        if not self.wanted(key):
            return
        if len(self.samples) >= MAX_PENDING:
            self.samples.pop(next(iter(self.samples)))
            self.dropped += 1
        self.samples[(key, int(t))] = v

    def on_message(self, topic: str, payload: bytes) -> None:
        parts = tree.split(self.root, topic)
        if parts is None:
            return
        head, rest = parts
        now = self.clock()
        try:
            if tree.is_point(head, rest):
                v = tree.number(jsonutil.loads(payload)) if payload else None
                if v is not None:
                    self.add(f"{head}/{rest}", now, v)
            elif rest == "status":
                self._on_status(head, payload.decode("utf-8", "replace").strip(), now)
            elif head == "controller" and rest == "state":
                self._on_state(jsonutil.loads(payload), now)
            elif rest == "events" and head not in ("sim", "reply"):
                body = jsonutil.loads(payload)
                if isinstance(body, dict):
                    self.events.append(
                        Event(now, "controller" if head == "controller" else f"{head}/events", body)
                    )
        except (ValueError, UnicodeDecodeError):
            log.debug("not recorded (not JSON): %s", topic)

    def _on_status(self, head: str, status: str, now: float) -> None:
        if self._status.get(head) != status:
            self._status[head] = status
            self.events.append(Event(now, f"{head}/status", {"status": status}))

    def _on_state(self, state: Any, now: float) -> None:
        if not isinstance(state, dict):
            return
        for name, v in tree.state_numbers(state).items():
            self.add(f"controller/{name}", now, v)
        summary = tree.state_summary(state)
        if summary != self._last_state:
            self._last_state = summary
            self.events.append(Event(now, "controller/state", summary))

    def take(self) -> tuple[list[Sample], list[Event]]:
        samples = [Sample(k, t, v) for (k, t), v in self.samples.items()]
        events, self.samples, self.events = self.events, {}, []
        return samples, events


class RecorderService:
    """`bess-edge recorder`: the history writer (part of `run` and `demo`)."""

    name = "recorder"

    def __init__(self, site: str, broker: BrokerSettings, cfg: HistoryConfig) -> None:
        self.site = site
        self.broker = broker
        self.cfg = cfg
        self.recorder = Recorder(site, cfg)
        self.store: HistoryStore | None = None
        self.batches = 0

    async def run(self, stop: asyncio.Event) -> None:
        while self.store is None:
            try:
                self.store = await asyncio.to_thread(
                    HistoryStore, self.cfg.path, self.cfg.max_bytes
                )
            except (OSError, sqlite3.Error) as exc:
                # the controller must not stop because the history cannot be written
                log.error(
                    "history: cannot open %s (%s); retrying in %g s",
                    self.cfg.path,
                    exc,
                    OPEN_RETRY_S,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), OPEN_RETRY_S)
                if stop.is_set():
                    return
        client = MqttClient(self.broker, f"{self.site}-recorder")
        client.subscribe(Topics(self.site).all, self._on_message, qos=1)
        with contextlib.suppress(TimeoutError):
            await client.start()
        last_compact = time.monotonic()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.cfg.flush_s)
                await self.flush()
                if time.monotonic() - last_compact >= self.cfg.compact_s:
                    last_compact = time.monotonic()
                    await asyncio.to_thread(self._compact)
        finally:
            await client.stop()
            await self.flush()
            await asyncio.to_thread(self.store.close)

    def _on_message(self, msg: Message) -> None:
        self.recorder.on_message(msg.topic, msg.payload)

    async def flush(self) -> None:
        samples, events = self.recorder.take()
        if (not samples and not events) or self.store is None:
            return
        try:
            await asyncio.to_thread(self.store.write, samples, events)
            self.batches += 1
        except Exception:
            log.exception("history: a batch of %d samples was not written", len(samples))

    def _compact(self) -> None:
        assert self.store is not None
        c = self.cfg
        try:
            self.store.compact(time.time(), c.raw_keep_s, c.minute_keep_s, c.events_keep_s)
        except Exception:
            log.exception("history: compaction failed")
