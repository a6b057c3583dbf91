"""`bess-edge sparkplug`: the Sparkplug B edge node as a Service (the MQTT shell).

It reads the retained topic tree (`status`, `meta`, points, the controller's `state`), feeds the
pure session (edge/sparkplug/session.py) and publishes what it returns. DCMD writes go through
the same request/response paths as any operator's: `set/{model}/{point}` for device points,
`controller/cmd/{command}` for the controller's command metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from edge.config.site import SiteConfig
from edge.mqtt import jsonutil
from edge.mqtt.client import BrokerSettings, Message, MqttClient, Will
from edge.mqtt.rpc import Requester
from edge.mqtt.topics import SparkplugTopics, Topics
from edge.services import Service
from edge.sparkplug import metrics as mx
from edge.sparkplug.config import SparkplugConfig
from edge.sparkplug.payload import MetricDef, decode_cmd
from edge.sparkplug.session import EdgeSession, Out

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 5.0


class SparkplugService:
    name = "sparkplug"

    def __init__(
        self,
        site: str,
        broker: BrokerSettings,
        cfg: SparkplugConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.topics = Topics(site)
        self.cfg = cfg
        self.sp = SparkplugTopics(cfg.group_id, cfg.edge_node_id or site)
        self.clock = clock
        self.session = EdgeSession(self.sp, cfg.primary_host_id)
        self.client = MqttClient(
            broker, client_id=f"bess-sparkplug-{site}", will_factory=self._will
        )
        self.requester = Requester(self.client, self.topics)
        self._prefix = self.topics.root + "/"
        self._lock = asyncio.Lock()  # one DCMD write at a time, in arrival order
        self._reconnecting = False

    def _ms(self) -> int:
        return int(self.clock() * 1000)

    def _will(self) -> Will:
        ndeath = self.session.prepare_connect(self._ms(), self.client.connect_count)
        return Will(self.sp.node_topic("NDEATH"), ndeath, qos=1, retain=False)

    def _send(self, outs: list[Out]) -> None:
        for o in outs:
            self.client.publish(o.topic, o.payload, qos=o.qos, retain=o.retain)

    # -- the topic tree ----------------------------------------------------------------------
    def _wanted(self, device: str) -> bool:
        if device in ("reply", "sim", "bridge", mx.CONTROLLER):
            return False
        return self.cfg.devices is None or device in self.cfg.devices

    def _on_tree(self, msg: Message) -> None:
        device, _, rest = msg.topic[len(self._prefix) :].partition("/")
        if device == mx.CONTROLLER:
            if self.cfg.controller:
                self._on_controller(rest, msg.payload)
            return
        if not rest or not self._wanted(device) or rest.startswith(("set/", "ts", "events")):
            return
        s = self.session
        if rest == "status":
            self._send(s.set_online(device, msg.payload == b"online", self._ms()))
        elif rest == "meta":
            try:
                meta = jsonutil.loads(msg.payload)
            except ValueError:
                log.warning("sparkplug: unreadable meta of %s", device)
                return
            if isinstance(meta, dict):
                s.define(device, mx.device_specs(meta))
                if s.value(device, mx.WRITE_RESULT) is None:
                    s.update(device, mx.WRITE_RESULT, None)  # no write yet: a known null
        else:
            try:
                value = jsonutil.loads(msg.payload) if msg.payload else None
            except ValueError:
                value = None
            s.update(device, rest, value)

    def _on_controller(self, rest: str, raw: bytes) -> None:
        if rest == "status":
            self._send(self.session.set_online(mx.CONTROLLER, raw == b"online", self._ms()))
        elif rest == "state":
            try:
                state = jsonutil.loads(raw)
            except ValueError:
                return
            if isinstance(state, dict):
                for name, value in mx.state_values(state).items():
                    self.session.update(mx.CONTROLLER, name, value)

    # -- commands from the host --------------------------------------------------------------
    def _on_ncmd(self, msg: Message) -> None:
        try:
            self._send(self.session.ncmd(decode_cmd(msg.payload), self._ms()))
        except ValueError as exc:
            log.warning("sparkplug: NCMD refused: %s", exc)

    async def _on_state(self, msg: Message) -> None:
        outs = self.session.host_state(msg.payload, self._ms())
        ndeath = self.sp.node_topic("NDEATH")
        if not any(o.topic == ndeath for o in outs):
            self._send(outs)
        elif not self._reconnecting:
            # The primary host went offline: end the session and the MQTT connection (stop()
            # publishes the NDEATH first), then connect anew (the next bdSeq) and wait for its
            # STATE to say online again.
            self._reconnecting = True
            try:
                await self.client.stop()
                self.session.on_disconnect()
                try:
                    await self.client.start(timeout=CONNECT_TIMEOUT_S)
                except TimeoutError:
                    log.warning("sparkplug: broker not reachable; retrying")
            finally:
                self._reconnecting = False

    async def _on_dcmd(self, msg: Message) -> None:
        device = msg.topic.rsplit("/", 1)[-1]
        try:
            cmds = decode_cmd(msg.payload)
        except ValueError as exc:
            log.warning("sparkplug: DCMD to %s refused: %s", device, exc)
            return
        async with self._lock:
            for cm in cmds:
                m = self.session.resolve(device, cm)
                if m is None:
                    log.warning("sparkplug: DCMD to %s: no metric %s", device, cm.name or cm.alias)
                    continue
                await self._write(device, m, cm.value)

    async def _write(self, device: str, m: MetricDef, value: Any) -> None:
        """One DCMD metric through the request/response path; its reply becomes a metric."""
        is_ctl = device == mx.CONTROLLER
        try:
            if is_ctl:
                command, body = mx.command_request(m.name, value)
                topic = self.topics.controller_cmd(command)
            elif not m.writable:
                raise mx.ReadOnly(f"{m.name}: the point is read-only")
            else:
                model, _, point = m.name.partition("/")
                topic, body = self.topics.set(device, model, point), {"value": value}
            reply = await self.requester.request(topic, body, timeout=self.cfg.write_timeout_s)
        except mx.NoCommand:
            reply = {"ok": True}
        except ValueError as exc:
            code = "not_writable" if isinstance(exc, mx.ReadOnly) else "invalid_payload"
            reply = {"ok": False, "error": {"code": code, "message": str(exc)}}
        except TimeoutError:
            reply = {"ok": False, "error": {"code": "timeout", "message": "no reply"}}
        result = {"metric": m.name, "value": value, **reply}
        self.session.update(
            device, mx.COMMAND_RESULT if is_ctl else mx.WRITE_RESULT, json.dumps(result)
        )
        if is_ctl and reply.get("ok") and m.name in mx.POWERS:
            self.session.update(device, m.name, value)
        else:
            self.session.resend(device, m.name)  # buttons read back false; refusals revert

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        c, s = self.client, self.session
        if self.cfg.controller:
            s.define(mx.CONTROLLER, mx.controller_specs())
            for name, value in mx.controller_initial().items():
                s.update(mx.CONTROLLER, name, value)
        c.subscribe(self.topics.all, self._on_tree, qos=1)
        c.subscribe(self.sp.node_topic("NCMD"), self._on_ncmd, qos=1)
        c.subscribe(self.sp.dcmd_filter, self._on_dcmd, qos=1)
        if self.cfg.primary_host_id:
            c.subscribe(self.sp.state(self.cfg.primary_host_id), self._on_state, qos=1)
        c.on_connect(lambda: self._send(s.on_connect(self._ms())))
        c.on_disconnect(s.on_disconnect)
        try:
            await c.start(timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:
            log.warning("sparkplug: broker not reachable; retrying")
        try:
            while not stop.is_set():
                self._send(s.flush(self._ms()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.cfg.publish_interval_s)
        finally:
            await c.stop()  # publishes the NDEATH first: a clean stop is a death too


def make_services(site: SiteConfig) -> list[Service]:
    """The edge node when the site file has an enabled [sparkplug] section."""
    cfg: SparkplugConfig | None = site.section("sparkplug")
    if cfg is None or not cfg.enabled:
        return []
    return [SparkplugService(site.site, site.broker, cfg)]
