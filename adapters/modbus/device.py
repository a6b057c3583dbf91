"""One Modbus device on MQTT: discovery, poll groups, publish by exception, verified writes,
fast failure detection and reconnects. Each device has its own Modbus client and its own
MQTT connection (so its own will on `{root}/{device}/status`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import struct
import time
from collections.abc import Callable
from typing import Any

from adapters.modbus.bus import (
    DEFINITIVE_CODES,
    POLL,
    WRITE,
    BadAnswer,
    DeviceGone,
    DeviceTimeout,
    ModbusBus,
)
from adapters.modbus.config import DeviceConfig, PollGroupConfig
from adapters.modbus.plan import (
    PollGroup,
    PublishFilter,
    ReadBlock,
    assign_groups,
    backoff,
    matches,
    plan_reads,
)
from adapters.modbus.points import (
    EncodeError,
    PointSpec,
    Value,
    decode_raw,
    encode_raw,
    engineering,
    to_raw,
)
from adapters.sunspec.discovery import SUNS_MARKER, NotSunSpec, ReadRefused, discover
from adapters.sunspec.layout import LayoutError
from edge.mqtt import jsonutil
from edge.mqtt.client import BrokerSettings, MqttClient, Will
from edge.mqtt.rpc import Request, RpcError, serve
from edge.mqtt.topics import Topics

log = logging.getLogger(__name__)

# Default poll groups of a SunSpec device: nameplate-like models once per connection.
SUNSPEC_DEFAULT_GROUPS = (PollGroupConfig("nameplate", 0.0, ("1/*", "120/*")),)
SF_LIMIT = 10  # SunSpec scale factors are -10..10; anything else is garbage
TS_INTERVAL_S = 1.0
SESSION_EXPIRY_S = 60

DeviceFailure = (DeviceTimeout, DeviceGone, NotSunSpec, LayoutError)


class DeviceAdapter:
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
        self.sf_values: dict[str, int | None] = {}
        self.meta: dict[str, Any] | None = None
        self.filter = PublishFilter(cfg.refresh_s, cfg.deadband, dict(cfg.deadbands))
        self.expiry_s = int(3 * cfg.refresh_s)
        self.last_good_poll: float | None = None
        self._last_ts_pub = -math.inf
        self._last_request = -math.inf
        self._probe: ReadBlock | None = None
        self._broken: str | None = None
        self._in_error = False
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
        async with self.bus.lock.hold(POLL):
            if self.pointmap is not None:
                specs = list(self.pointmap)
                kind, identity = "pointmap", {}
                models: list[Any] = [specs[0].model]
            else:
                dmap = await discover(self._read, tuple(self.cfg.base_addresses), self.cfg.max_regs)
                specs = [p for m in dmap.models for p in m.points]
                kind = "sunspec"
                models = [m.model_id if m.instance == 1 else m.key for m in dmap.models]
                identity = dmap.identity
                self._probe = ReadBlock(dmap.base, 2)
        self._set_layout(specs, kind, models, identity)
        self.filter.forget()
        self.sf_values.clear()
        now = self.clock()
        for g in self.groups:
            g.next_due, g.done_once = now, False
        await self._poll(self.groups)
        if self._in_error:
            log.info("%s: device recovered", self.name)
        self._in_error = False
        self._set_online(True)

    def _set_layout(
        self, specs: list[PointSpec], kind: str, models: list[Any], identity: dict[str, Any]
    ) -> None:
        new = {p.key: p for p in specs}
        if new == self.specs and self.groups:
            return
        self.specs = new
        self.topic_of = {k: self._topic(p) for k, p in new.items()}
        self.values = {k: v for k, v in self.values.items() if k in new}
        groups = self.cfg.poll_groups
        if groups is None:
            groups = SUNSPEC_DEFAULT_GROUPS if kind == "sunspec" else ()
        self.groups = assign_groups(specs, groups, self.cfg.poll_s)
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
        decoded: dict[str, Value] = {}
        for g in groups:
            for block in list(g.blocks):
                try:
                    async with self.bus.lock.hold(POLL):
                        if self._broken:
                            raise DeviceTimeout(self._broken)
                        regs = await self._read(block.start, block.count)
                except ReadRefused as exc:
                    if exc.code != 2 or len(block.points) < 2:
                        raise
                    # The device refuses a bridged gap: read its points one by one from now on.
                    log.warning("%s: %s; reading its points separately", self.name, exc)
                    i = g.blocks.index(block)
                    g.blocks[i : i + 1] = parts = plan_reads(
                        block.points, self.specs, self.cfg.max_regs, max_gap=0
                    )
                    for part in parts:
                        async with self.bus.lock.hold(POLL):
                            regs = await self._read(part.start, part.count)
                        decoded.update(self._decode(part, regs))
                    continue
                decoded.update(self._decode(block, regs))
            now = self.clock()
            g.done_once = True
            if not g.once:
                g.next_due = max(g.next_due + g.period_s, now)
        self.polls += 1
        self.last_good_poll = self.wall()
        self._publish_values(decoded)

    def _sf(self, key: str, block: ReadBlock, regs: list[int]) -> int | None:
        sf_spec = self.specs.get(key)
        if sf_spec is None:
            return None
        if block.start <= sf_spec.address and sf_spec.end <= block.end:
            o = sf_spec.address - block.start
            raw = decode_raw(sf_spec, regs[o : o + sf_spec.length])
            sf = raw if isinstance(raw, int) and abs(raw) <= SF_LIMIT else None
            self.sf_values[key] = sf
            return sf
        return self.sf_values.get(key)

    def _decode(self, block: ReadBlock, regs: list[int]) -> dict[str, Value]:
        out: dict[str, Value] = {}
        for p in block.points:
            o = p.address - block.start
            raw = decode_raw(p, regs[o : o + p.length])
            sf = self._sf(p.sf_key, block, regs) if p.sf_key else None
            out[p.key] = engineering(p, raw, sf)
        return out

    # -- publishing ------------------------------------------------------------------------
    def _publish_values(self, decoded: dict[str, Value]) -> None:
        self.values.update(decoded)
        for k, v in decoded.items():
            if self.filter.changed(k, v):
                self._pub_value(k, v)
        now = self.clock()
        if self.filter.refresh_due(now):
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

    # -- writes ----------------------------------------------------------------------------
    def _confirmed(
        self, spec: PointSpec, raw: Any, rb: Any, value: Any, v: Value
    ) -> tuple[bool, str]:
        """Is the read-back a confirmation of the write? (B5: 0 included, never assumed.)

        Exact match, or for configured points: a self-clearing command read back as 0, or
        a value the device moves by itself (a countdown) within its tolerance.
        """
        if same_raw(spec, raw, rb):
            return True, ""
        if rb == 0 and any(matches(spec.key, p) for p in self.cfg.self_clearing):
            return True, "self_cleared"
        tol = next(
            (t for p, t in self.cfg.readback_tolerance.items() if matches(spec.key, p)), None
        )
        if (
            tol is not None
            and isinstance(v, (int, float))
            and isinstance(value, (int, float))
            and abs(v - value) <= tol
        ):
            return True, "within_tolerance"
        return False, ""

    async def _on_set(self, request: Request) -> dict[str, Any]:
        try:
            _, model, point = self.topics.parse_set(request.topic)
        except ValueError as exc:
            raise RpcError("unknown_point", str(exc)) from None
        key = f"{model}/{point}"
        spec = self.specs.get(key)
        if spec is None:
            if not self.specs and not self.online:
                raise RpcError("offline", f"{self.name} is offline (its points are not known yet)")
            raise RpcError("unknown_point", f"{self.name} has no point {key}")
        if not spec.writable:
            raise RpcError("not_writable", f"{key} is read-only")
        if "value" not in request.body:
            raise RpcError("invalid_payload", "value: missing")
        value = request.body["value"]
        if value is None:
            raise RpcError("invalid_payload", f"value: null cannot be written to {key}")
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not (isinstance(value, str) if spec.is_string else numeric):
            want = "a string" if spec.is_string else "a number"
            raise RpcError(
                "invalid_payload", f"value: {key} needs {want}, got {type(value).__name__}"
            )
        limit = next((lim for pat, lim in self.cfg.limits.items() if matches(key, pat)), None)
        if limit is not None and not spec.is_string and not limit[0] <= value <= limit[1]:
            raise RpcError(
                "out_of_range",
                f"{key}: {value} is outside the site limits {limit[0]:g}..{limit[1]:g}",
            )
        if not self.online:
            raise RpcError("offline", f"{self.name} is offline")
        try:
            async with asyncio.timeout(self.cfg.write_budget_s):
                return await self._write(spec, value)
        except TimeoutError:
            raise RpcError(
                "timeout", f"{key}: no answer within {self.cfg.write_budget_s:g} s"
            ) from None

    async def _write(self, spec: PointSpec, value: Any) -> dict[str, Any]:
        attempts = spec.write_attempts or self.cfg.write_attempts
        wait = spec.write_wait_s if spec.write_wait_s is not None else self.cfg.write_wait_s
        sf_spec = self.specs.get(spec.sf_key) if spec.sf_key else None
        lo, hi = spec.address, spec.end
        if (
            sf_spec is not None
            and max(hi, sf_spec.end) - min(lo, sf_spec.address) <= self.cfg.max_regs
        ):
            lo, hi = min(lo, sf_spec.address), max(hi, sf_spec.end)
        block = ReadBlock(lo, hi - lo, [spec])
        last: RpcError | None = None
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(wait)
            try:
                async with self.bus.lock.hold(WRITE):
                    if self._broken or not self.online:
                        raise RpcError("offline", f"{self.name} is offline")
                    sf: int | None = None
                    if sf_spec is not None:
                        sf = self._sf(
                            sf_spec.key, block, await self._read(block.start, block.count)
                        )
                    raw = to_raw(spec, value, sf)
                    self._last_request = self.clock()
                    await self.bus.write(spec.address, encode_raw(spec, raw))
                    regs = await self._read(block.start, block.count)
                rb = decode_raw(spec, regs[spec.address - lo : spec.end - lo])
                rb_sf = self._sf(sf_spec.key, block, regs) if sf_spec is not None else None
                v = engineering(spec, rb, rb_sf)
                self._publish_values({spec.key: v})
                ok, how = self._confirmed(spec, raw, rb, value, v)
                if ok:
                    reply: dict[str, Any] = {"value": v, "raw": rb}
                    if how:
                        reply["readback"] = how
                    return reply
                last = RpcError(
                    "device_error", f"{spec.key}: read back {rb!r} after writing {raw!r}", raw=rb
                )
            except EncodeError as exc:
                raise RpcError(exc.code, str(exc)) from None
            except ReadRefused as exc:
                last = RpcError(
                    "device_error", f"{spec.key}: device refused: {exc}", modbus_code=exc.code
                )
                if exc.code in DEFINITIVE_CODES:
                    raise last from None
            except BadAnswer as exc:
                self._broken = f"bad answer: {exc}"
                self._set_online(False)  # the stream is out of step; the poll loop reconnects
                raise RpcError("device_error", f"{spec.key}: {exc}") from None
            except DeviceTimeout as exc:
                self._broken = f"write timed out: {exc}"
                self._set_online(False)  # announce now; the poll loop reconnects
                raise RpcError("timeout", f"{spec.key}: {exc}") from None
            except DeviceGone as exc:
                raise RpcError("offline", f"{self.name}: {exc}") from None
        assert last is not None
        raise last


def same_raw(spec: PointSpec, written: Any, read: Any) -> bool:
    """Compare what was written with what came back, at register resolution."""
    if spec.type == "float32" and isinstance(written, float) and isinstance(read, float):
        return struct.pack(">f", written) == struct.pack(">f", read)
    if isinstance(written, str):
        return read == written.rstrip("\0 ") or (read is None and written == "")
    return bool(written == read)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
