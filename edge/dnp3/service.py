"""`bess-edge dnp3` (and inside `run` when `[dnp3] enabled = true`): the MQTT side.

- subscribes to the controller's state and status and the device topics the point map reads,
  and keeps the outstation's database in step (events carry the time of the message);
- sends the controls as controller commands with edge.mqtt.rpc, and maps each reply to a DNP3
  command status (edge/dnp3/commands.py);
- watches the master (edge/dnp3/watch.py) and sends the fallback command when it is lost;
- publishes `{root}/dnp3/state` (retained) and `{root}/dnp3/status` (online, will offline).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from dnp3.core.enums import CommandStatus
from dnp3.core.flags import AnalogQuality, BinaryQuality
from dnp3.core.timestamp import DNP3Timestamp
from dnp3.outstation import CommandResult

from edge.config.site import SiteConfig
from edge.dnp3.commands import ControlMap, Decision, Send, reply_status
from edge.dnp3.config import Dnp3Config
from edge.dnp3.image import SiteImage
from edge.dnp3.outstation import OutstationThread
from edge.dnp3.watch import MasterWatch
from edge.mqtt import jsonutil
from edge.mqtt.client import BrokerSettings, Message, MqttClient, Will
from edge.mqtt.rpc import Requester
from edge.mqtt.topics import Topics
from edge.services import Service

log = logging.getLogger(__name__)
TICK_S = 0.1
CONNECT_TIMEOUT_S = 5.0


class Dnp3Service:
    name = "dnp3"

    def __init__(
        self,
        site: str,
        broker: BrokerSettings,
        cfg: Dnp3Config,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.topics = Topics(site)
        self.broker = broker
        self.cfg = cfg
        self.clock = clock
        self.wall = wall
        self.image = SiteImage(self.topics, cfg.points, cfg.soc_bands)
        self.controls = ControlMap(cfg.points, cfg.remote_control, wall, self.image.grid_functions)
        self.watch = MasterWatch(cfg.master_timeout_s, cfg.fallback)
        self.os = OutstationThread(cfg, self._execute, self._on_request)
        self.ready = asyncio.Event()
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: MqttClient | None = None
        self._requester: Requester | None = None
        self._dirty = True
        self._last_state: dict[str, Any] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        t = self.topics
        self._loop = asyncio.get_running_loop()
        client = MqttClient(self.broker, f"bess-dnp3-{t.site}", will=Will(t.dnp3_status))
        self._client = client
        self._requester = Requester(client, t)
        for sub in self.image.subscriptions():
            client.subscribe(sub, self._on_message, qos=1)
        client.on_connect(self._announce)
        self.port = await asyncio.to_thread(self.os.start)
        log.info(
            "DNP3 outstation %d listening on %s:%d",
            self.cfg.outstation_address,
            self.cfg.host,
            self.port,
        )
        try:
            try:
                await client.start(timeout=CONNECT_TIMEOUT_S)
            except TimeoutError:
                log.warning(
                    "broker %s:%s not reachable; retrying", self.broker.host, self.broker.port
                )
            self.ready.set()
            last_publish = -1e18
            while not stop.is_set():
                now = self.clock()
                if self.watch.due(now):
                    await self._fallback(now)
                self._sync_stats()
                if self._dirty:
                    self._push_points()
                if now - last_publish >= self.cfg.state_publish_s or self._state_changed():
                    self._publish_state()
                    last_publish = now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), TICK_S)
        finally:
            await asyncio.to_thread(self.os.stop)
            await client.stop()

    def _announce(self) -> None:
        assert self._client is not None
        self._client.publish(self.topics.dnp3_status, "online", qos=1, retain=True)
        self._publish_state()

    # -- site -> database ------------------------------------------------------------------
    def _on_message(self, msg: Message) -> None:
        if self.image.on_message(msg.topic, msg.payload):
            self._dirty = True
            self._push_points()

    def _push_points(self) -> None:
        """Compute every mapped input and hand the values to the outstation thread."""
        self._dirty = False
        ts = DNP3Timestamp.from_datetime(dt.datetime.fromtimestamp(self.wall(), dt.UTC))
        bins = [(p.index, self.image.binary(p)) for p in self.cfg.points.binary_inputs]
        analogs = [
            (p.index, None if (v := self.image.analog(p)) is None else round(v * p.scale))
            for p in self.cfg.points.analog_inputs
        ]
        aos = {p.index: p.scale for p in self.cfg.points.analog_outputs}
        params = {p.index: self.controls.readback(p) for p in self.cfg.points.analog_outputs}

        def apply() -> None:
            db = self.os.db
            for i, b in bins:
                bp = db.binary_inputs[i]
                bq = BinaryQuality.COMM_LOST if b is None else BinaryQuality.ONLINE
                bv = bp.value if b is None else b
                if (bv, bq) != (bp.value, bp.quality):  # an update is an event: only changes
                    db.update_binary_input(i, bv, bq, ts)
            for i, a in analogs:
                ap = db.analog_inputs[i]
                aq = AnalogQuality.COMM_LOST if a is None else AnalogQuality.ONLINE
                av = ap.value if a is None else a
                if (av, aq) != (ap.value, ap.quality):
                    db.update_analog_input(i, av, aq, ts)
            for i, v in params.items():
                if v is not None and db.analog_outputs[i].value != v * aos[i]:
                    db.update_analog_output(i, v * aos[i])

        self.os.call(apply)

    def _sync_stats(self) -> None:
        buf = self.os.db.event_buffer
        dropped = sum(c.overflow_count for c in (buf.class1, buf.class2, buf.class3))
        if dropped != self.image.events_dropped:
            self.image.events_dropped = dropped
            self._dirty = True

    # -- controls (called on the outstation thread) -----------------------------------------
    def _on_request(self) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._seen)

    def _seen(self) -> None:
        was = self.watch.active
        self.watch.seen(self.clock())
        if was != self.watch.active:
            self.image.fallback_active = self.watch.active
            self._dirty = True

    def _execute(self, kind: str, index: int, value: Any, how: str) -> CommandResult:
        """Runs on the outstation thread: decide, send if needed, wait, map the reply."""
        d: Decision = (
            self.controls.binary(index, value, how)
            if kind == "binary"
            else self.controls.analog(index, float(value), how)
        )
        if isinstance(d, Send):
            status, message = self._send_blocking(d)
        else:
            status, message = d.status, d.message
        self.controls.commit(d, status)
        log.info("DNP3 %s %s[%d]=%r: %s %s", how, kind, index, value, status.name, message)
        if status == CommandStatus.SUCCESS and how != "select":
            loop = self._loop
            if loop is not None:
                loop.call_soon_threadsafe(self.watch.control_accepted, self.clock())
                loop.call_soon_threadsafe(self._mark_dirty)
        return CommandResult(status=status, message=message)

    def _mark_dirty(self) -> None:
        self._dirty = True

    def _send_blocking(self, d: Send) -> tuple[CommandStatus, str]:
        loop = self._loop
        if loop is None or self._client is None or not self._client.connected:
            return reply_status(None)
        fut = asyncio.run_coroutine_threadsafe(self._send(d.command, d.body), loop)
        try:
            reply = fut.result(self.cfg.command_timeout_s + 1.0)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            fut.cancel()
            reply = None
        return reply_status(reply)

    async def _send(self, command: str, body: dict[str, Any]) -> dict[str, Any] | None:
        assert self._requester is not None
        try:
            reply = await self._requester.request(
                self.topics.controller_cmd(command), body, timeout=self.cfg.command_timeout_s
            )
        except TimeoutError:
            return None
        if command == "grid" and reply.get("ok") is True and isinstance(reply.get("grid"), dict):
            self.image.grid_reply = reply["grid"]  # on this loop, as the state messages
            self._dirty = True
        return reply

    # -- master loss -----------------------------------------------------------------------
    async def _fallback(self, now: float) -> None:
        body: dict[str, Any] = {}
        if self.watch.fallback == "hold":  # the controller's state names it as ours
            silent = now - (self.watch.last_seen or now)
            body = {"source": "fallback", "reason": f"DNP3 master silent for {silent:.0f} s"}
        reply = await self._send(self.watch.fallback, body)
        status, message = reply_status(reply)
        ok = status == CommandStatus.SUCCESS
        outcome = "ok" if ok else "no_reply" if reply is None else "refused"
        self.watch.done(self.clock(), outcome, message)
        log.warning("%s", self.watch.reason)
        if reply is not None:
            self.os.call(self._forget_enabled)
            self.image.fallback_active = True
            self._dirty = True
        self._publish_state()

    def _forget_enabled(self) -> None:
        self.controls.enabled = ""

    # -- state topic -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        buf = self.os.db.event_buffer
        return {
            "listening": {"host": self.cfg.host, "port": self.port},
            "outstation_address": self.cfg.outstation_address,
            "master": {
                "address": self.cfg.master_address,
                "connected": self.os.runner.connections > 0,
                "connections": self.os.runner.accepted,
                "rejected_frames": self.os.outstation.rejected_frames,
                "silent_s": None
                if self.watch.last_seen is None
                else round(self.clock() - self.watch.last_seen, 1),
            },
            "events": {
                "buffered": buf.class1.count + buf.class2.count + buf.class3.count,
                "dropped": self.image.events_dropped,
                "per_class_max": self.cfg.event_buffer,
            },
            "unsolicited": self.cfg.unsolicited,
            "remote_control": self.cfg.remote_control,
            "enabled_mode": self.controls.enabled or None,
            "fallback": self.watch.as_dict(),
        }

    def _state_changed(self) -> bool:
        s = self.state()
        s["master"].pop("silent_s")
        changed = s != self._last_state
        self._last_state = s
        return changed

    def _publish_state(self) -> None:
        if self._client is None:
            return
        body = {**self.state(), "ts": round(self.wall(), 3)}
        self._client.publish(self.topics.dnp3_state, jsonutil.dumps(body), qos=1, retain=True)


def make_services(site: SiteConfig) -> list[Service]:
    """The outstation when the site file has `[dnp3]` with `enabled = true`."""
    cfg: Dnp3Config | None = site.section("dnp3")
    if cfg is None or not cfg.enabled:
        return []
    return [Dnp3Service(site.site, site.broker, cfg)]
