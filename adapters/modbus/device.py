"""One Modbus device on MQTT: discovery, poll groups, publish by exception, verified writes,
fast failure detection and reconnects. Each device has its own Modbus client and its own
MQTT connection (so its own will on `{root}/{device}/status`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from adapters.modbus.bus import POLL, ModbusBus
from adapters.modbus.config import DeviceConfig, PollGroupConfig
from adapters.modbus.decoder import Decoder
from adapters.modbus.errors import REFUSED_CODES, DeviceGone, DeviceTimeout, ReadRefused
from adapters.modbus.plan import (
    PollGroup,
    PublishFilter,
    ReadBlock,
    assign_groups,
    backoff,
    plan_reads,
    split_block,
)
from adapters.modbus.points import PointSpec, Value
from adapters.modbus.refused import RefusedPoints
from adapters.modbus.writes import WriteMixin
from adapters.sunspec.discovery import SUNS_MARKER, NotSunSpec, discover
from adapters.sunspec.layout import LayoutError
from edge.mqtt import jsonutil
from edge.mqtt.client import BrokerSettings, MqttClient, Will
from edge.mqtt.rpc import serve
from edge.mqtt.topics import Topics

log = logging.getLogger(__name__)

# Default poll groups of a SunSpec device: nameplate-like models once per connection.
SUNSPEC_DEFAULT_GROUPS = (PollGroupConfig("nameplate", 0.0, ("1/*", "120/*")),)
TS_INTERVAL_S = 1.0
SESSION_EXPIRY_S = 60

DeviceFailure = (DeviceTimeout, DeviceGone, NotSunSpec, LayoutError)


class DeviceAdapter(WriteMixin):
    """Serves one device until `stop` is set. `clock`/`wall` are injectable for tests."""

    def __init__(
        self,
        topics: Topics,
        broker: BrokerSettings,
        cfg: DeviceConfig,
        pointmap: tuple[PointSpec, ...] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.topics = topics
        self.cfg = cfg
        self.name = cfg.name
        self.pointmap = pointmap
        self.clock = clock
        self.wall = wall
        self.bus = ModbusBus(cfg)
        self.mqtt = MqttClient(
            broker,
            client_id=f"{topics.site}-adapter-{cfg.name}",
            will=Will(topics.status(cfg.name)),
            # A persistent session keeps the set/... subscription while this adapter or the
            # broker is briefly away, so write requests (QoS 1, 10 s expiry) sent meanwhile,
            # e.g. the controller's stop sequence, are delivered after the reconnect, not dropped.
            session_expiry_s=SESSION_EXPIRY_S,
        )
        self.online = False
        self.specs: dict[str, PointSpec] = {}
        self.topic_of: dict[str, str] = {}
        self.groups: list[PollGroup] = []
        self.values: dict[str, Value] = {}
        self.decoder = Decoder()
        self.meta: dict[str, Any] | None = None
        self.filter = PublishFilter(cfg.refresh_s, cfg.deadband, dict(cfg.deadbands))
        self.expiry_s = int(3 * cfg.refresh_s)
        self.last_good_poll: float | None = None
        self._last_ts_pub = -math.inf
        self._last_request = -math.inf
        self._probe: ReadBlock | None = None
        self._broken: str | None = None
        self._in_error = False
        self._warned: set[str] = set()
        self.missing: list[PointSpec] = []  # beyond a short model's L: always null
        self.group_of: dict[str, PollGroup] = {}
        self.refused = RefusedPoints(cfg.refused_retry_min_s, cfg.refused_retry_max_s)
        self._nulls: dict[str, Value] = {}  # points found unreadable during this poll
        self._restored = False
        self.polls = 0
        self.published = 0

    # -- lifecycle -----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        serve(self.mqtt, self.topics.set_filter(self.name), self._on_set)
        self.mqtt.on_connect(self._republish)
        try:
            await self.mqtt.start(timeout=2.0)
        except TimeoutError:
            log.error(
                "%s: broker %s:%s not answering; carrying on, paho keeps trying",
                self.name,
                self.mqtt.broker.host,
                self.mqtt.broker.port,
            )
        attempt = 0
        try:
            while not stop.is_set():
                try:
                    await self._connect()
                    attempt = 0
                    await self._poll_loop(stop)
                except DeviceFailure as exc:
                    self._failed(exc)
                except ReadRefused as exc:  # e.g. a point map pointing at missing registers
                    self._failed(exc)
                delay = backoff(attempt, self.cfg.reconnect_min_s, self.cfg.reconnect_max_s)
                attempt += 1
                await _sleep(stop, delay)
        finally:
            self._set_online(False)
            self.bus.close()
            await self.mqtt.stop()

    def _failed(self, exc: Exception) -> None:
        if not self._in_error:
            log.error("%s: device failed: %s", self.name, exc)
            self._in_error = True
        else:
            log.debug("%s: still failing: %s", self.name, exc)
        self._set_online(False)
        self.bus.close()

    async def _connect(self) -> None:
        """Connect, (re)discover and read everything: fresh scale factors, fresh nameplate."""
        self._broken = None
        await self.bus.connect()
        extra: dict[str, Any] = {}
        missing: list[PointSpec] = []
        async with self.bus.lock.hold(POLL):
            if self.pointmap is not None:
                specs = list(self.pointmap)
                kind, identity = "pointmap", {}
                models: list[Any] = [specs[0].model]
            else:
                dmap = await discover(self._read, tuple(self.cfg.base_addresses), self.cfg.max_regs)
                specs = [p for m in dmap.models for p in m.points]
                missing = [p for m in dmap.models for p in m.missing]
                kind = "sunspec"
                models = [m.model_id if m.instance == 1 else m.key for m in dmap.models]
                identity = dmap.identity
                self._probe = ReadBlock(dmap.base, 2)
                extra = {
                    "chain": [c.meta() for c in dmap.chain],
                    "end": dmap.end,
                    "missing": [p.key for p in missing],
                }
                for note in dmap.notes:
                    self._warn_once(note)
        self._set_layout(specs, kind, models, identity, missing, extra)
        self.filter.forget()
        self.decoder.sf_values.clear()
        now = self.clock()
        for g in self.groups:
            g.next_due, g.done_once = now, False
        await self._poll(self.groups)
        if self._in_error:
            log.info("%s: device recovered", self.name)
        self._in_error = False
        self._set_online(True)

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s: %s", self.name, message)

    def _set_layout(
        self,
        specs: list[PointSpec],
        kind: str,
        models: list[Any],
        identity: dict[str, Any],
        missing: list[PointSpec] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        new = {p.key: p for p in specs}
        if new == self.specs and self.groups:
            # Same device: keep what was learned (split blocks, unreadable points).
            if (
                self.meta is not None
                and extra
                and any(self.meta.get(k) != v for k, v in extra.items())
            ):
                self.meta.update(extra)
                self._publish_meta()
            return
        self.specs = self.decoder.specs = new
        self.missing = list(missing or ())
        self.refused.clear()
        self.topic_of = {k: self._topic(p) for k, p in new.items()}
        self.topic_of.update((p.key, self._topic(p)) for p in self.missing)
        self.values = {k: v for k, v in self.values.items() if k in new}
        self.values.update((p.key, None) for p in self.missing)
        groups = self.cfg.poll_groups
        if groups is None:
            groups = SUNSPEC_DEFAULT_GROUPS if kind == "sunspec" else ()
        self.groups = assign_groups(specs, groups, self.cfg.poll_s)
        self.group_of = {p.key: g for g in self.groups for p in g.points}
        for g in self.groups:
            g.blocks = plan_reads(g.points, self.specs, self.cfg.max_regs, self.cfg.max_gap)
        if self.pointmap is not None and self.groups:
            first = self.groups[0].blocks[0]
            self._probe = ReadBlock(first.start, min(first.count, 2))
        self.meta = {
            "device": self.name,
            "kind": kind,
            "identity": identity,
            "models": models,
            "points": {
                k: {"unit": p.unit, "type": p.type, "access": p.access} for k, p in new.items()
            },
            **(extra or {}),
            "unreadable": {},
        }
        self._publish_meta()

    def _topic(self, p: PointSpec) -> str:
        rest = p.key[len(p.model) + 1 :]
        group, _, point = rest.rpartition("/")
        return self.topics.point(self.name, p.model, point, group)

    # -- polling ---------------------------------------------------------------------------
    async def _read(self, address: int, count: int) -> list[int]:
        self._last_request = self.clock()
        return await self.bus.read(address, count)

    def _probe_every(self) -> float:
        c = self.cfg
        return max(0.05, c.offline_budget_s - c.timeout_s * (c.retries + 1) - 0.05)

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self._broken:
                raise DeviceTimeout(self._broken)
            now = self.clock()
            due = [
                g
                for g in self.groups
                if (g.once and not g.done_once) or (not g.once and g.next_due <= now)
            ]
            if due:
                await self._poll(due)
                continue
            if self.filter.refresh_due(now):
                self._publish_all()
            if now - self._last_request >= self._probe_every() and self._probe is not None:
                async with self.bus.lock.hold(POLL):
                    regs = await self._read(self._probe.start, self._probe.count)
                if self.pointmap is None and tuple(regs) != SUNS_MARKER:
                    raise NotSunSpec(f"SunS marker gone from {self._probe.start}: rediscover")
                continue
            wake = min(
                [g.next_due for g in self.groups if not g.once]
                + [self._last_request + self._probe_every()]
                + [(self.filter.last_refresh or now) + self.cfg.refresh_s]
            )
            await _sleep(stop, max(0.0, wake - self.clock()))

    async def _poll(self, groups: list[PollGroup]) -> None:
        reads: list[tuple[ReadBlock, list[int]]] = []
        self._nulls = {}
        for g in groups:
            for block in list(g.blocks):
                parts = await self._read_block(block)
                if len(parts) != 1 or parts[0][0] is not block:
                    # Refused: from now on read the parts that answered (see _read_block).
                    i = g.blocks.index(block)
                    g.blocks[i : i + 1] = [b for b, _ in parts]
                reads.extend(parts)
            now = self.clock()
            g.done_once = True
            if not g.once:
                g.next_due = max(g.next_due + g.period_s, now)
        reads.extend(await self._retry_refused())
        if self.specs and len(self.refused.points) == len(self.specs):
            # Nothing left to read: a device that refuses everything is not online.
            self._publish_unreadable()
            raise DeviceTimeout(f"the device refuses every point ({len(self.specs)})")
        self.polls += 1
        self.last_good_poll = self.wall()
        decoded = self.decoder.decode_all(reads)
        decoded.update(self._nulls)
        if self._nulls or self._restored:
            self._publish_unreadable()
        self._publish_values(decoded)

    def _publish_unreadable(self) -> None:
        self._restored = False
        if self.meta is not None:
            self.meta["unreadable"] = self.refused.meta()
            self._publish_meta()

    async def _read_once(self, block: ReadBlock) -> list[int]:
        async with self.bus.lock.hold(POLL):
            if self._broken:
                raise DeviceTimeout(self._broken)
            return await self._read(block.start, block.count)

    async def _read_block(
        self, block: ReadBlock, top: bool = True
    ) -> list[tuple[ReadBlock, list[int]]]:
        """Read a block; a refused one (exception 2 or 3) is halved down to single points,
        and a single point the device refuses is recorded as unreadable (null)."""
        try:
            return [(block, await self._read_once(block))]
        except ReadRefused as exc:
            if exc.code not in REFUSED_CODES:
                raise
            code = exc.code
        parts = split_block(block, self.specs, self.cfg.max_regs)
        if parts:
            if top:
                self._warn_once(
                    f"read {block.start}+{block.count} refused (exception {code}); splitting it"
                )
            out: list[tuple[ReadBlock, list[int]]] = []
            for part in parts:
                out.extend(await self._read_block(part, False))
            return out
        p = block.points[0]
        if block.count > p.length:  # read with its scale factor: try the point alone
            return await self._read_block(ReadBlock(p.address, p.length, [p]), False)
        if self.refused.refuse(p.key, block, code, self.clock(), self.wall()):
            self._warn_once(f"{p.key} at {p.address} refused (exception {code}): unreadable")
        self._nulls[p.key] = None
        return []

    async def _retry_refused(self) -> list[tuple[ReadBlock, list[int]]]:
        out: list[tuple[ReadBlock, list[int]]] = []
        for key, block in self.refused.due(self.clock()):
            try:
                regs = await self._read_once(block)
            except ReadRefused as exc:
                if exc.code not in REFUSED_CODES:
                    raise
                self.refused.refuse(key, block, exc.code, self.clock(), self.wall())
                continue
            self.refused.restored(key)
            self._restored = True
            log.info("%s: %s is readable again", self.name, key)
            g = self.group_of[key]
            g.blocks.append(block)
            g.blocks.sort(key=lambda b: b.start)
            out.append((block, regs))
        return out

    # -- publishing ------------------------------------------------------------------------
    def _publish_values(self, decoded: dict[str, Value]) -> None:
        self.values.update(decoded)
        first = self.filter.last_refresh is None
        for k, v in (self.values if first else decoded).items():
            if self.filter.changed(k, v):
                self._pub_value(k, v)
        now = self.clock()
        if first:  # everything was just published: that is the first full refresh
            self.filter.last_refresh = now
            self._publish_ts()
        elif self.filter.refresh_due(now):
            self._publish_all()
        elif now - self._last_ts_pub >= TS_INTERVAL_S:
            self._publish_ts()

    def _pub_value(self, key: str, value: Value) -> None:
        self.published += 1
        self.mqtt.publish(self.topic_of[key], jsonutil.dumps(value), 0, True, self.expiry_s)

    def _publish_ts(self) -> None:
        if self.last_good_poll is None:
            return
        self._last_ts_pub = self.clock()
        self.mqtt.publish(
            self.topics.ts(self.name),
            jsonutil.dumps(round(self.last_good_poll, 3)),
            0,
            True,
            self.expiry_s,
        )

    def _publish_all(self) -> None:
        """The periodic full refresh (and the republish after an MQTT reconnect)."""
        for k, v in self.values.items():
            self._pub_value(k, v)
        self.filter.refreshed(self.clock(), dict(self.values))
        self._publish_ts()

    def _publish_meta(self) -> None:
        if self.meta is not None:
            self.mqtt.publish(self.topics.meta(self.name), jsonutil.dumps(self.meta), 1, True)

    def _set_online(self, online: bool) -> None:
        changed = online != self.online
        self.online = online
        if changed or online:
            self.mqtt.publish(
                self.topics.status(self.name), "online" if online else "offline", 1, True
            )

    def _republish(self) -> None:
        """After every MQTT (re)connect: the broker may have lost our retained state."""
        self.mqtt.publish(
            self.topics.status(self.name), "online" if self.online else "offline", 1, True
        )
        self._publish_meta()
        if self.online:
            self._publish_all()


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
