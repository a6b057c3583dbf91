"""The thin MQTT shell around the controller: driver.Controller over core.ControllerCore
(topics.md, "Controller").

- subscribes to the battery, inverter and meter topic branches and feeds the Controller;
- answers `{root}/controller/cmd/+` with edge.mqtt.rpc.serve (exactly one reply per request);
- publishes `{root}/controller/state` (retained, on change and every state_publish_s),
  `{root}/controller/events`, and `{root}/controller/status` (online, will offline);
- writes devices through `{root}/{device}/set/{model}/{point}` with edge.mqtt.rpc.Requester;
- owns the loop, the tick timer and (through `Jobs`) every task the controller's work runs in:
  the synchronous core (core.py) asks for writes, replies and timers, and the driver
  (driver.py) carries them out on this loop.
One service instance runs one controller loop (field notes B9).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from edge.controller.config import ControllerSettings
from edge.controller.driver import Controller, Refused
from edge.controller.jobs import Jobs
from edge.controller.profiles import profile_class
from edge.controller.telemetry import Telemetry
from edge.mqtt import jsonutil
from edge.mqtt.client import BrokerSettings, Message, MqttClient, Will
from edge.mqtt.rpc import Request, Requester, RpcError, serve
from edge.mqtt.topics import Topics

log = logging.getLogger(__name__)

IGNORED_LEAVES = frozenset({"meta", "ts", "events"})
# A persistent session: commands (QoS 1, 10 s expiry) published while the controller or the
# broker was briefly away are delivered after the reconnect, and still get their one reply.
SESSION_EXPIRY_S = 60
RECONNECT_REPUBLISH_S = 0.5


class MqttWriter:
    """The DeviceWriter port bound to set topics (request/response, bounded by `timeout`)."""

    def __init__(self, requester: Requester, topics: Topics, timeout: float) -> None:
        self._req = requester
        self._topics = topics
        self._timeout = timeout

    async def write(self, device: str, model: str, point: str, value: Any) -> dict[str, Any]:
        topic = self._topics.set(device, model, point)
        return await self._req.request(topic, {"value": value}, timeout=self._timeout)


def parse_device_topic(topics: Topics, device: str, topic: str) -> tuple[str, str] | None:
    """(model, point) of a point topic, ("", "status") for status, ("", "ts") for the time of
    the adapter's last good poll, None for everything else."""
    suffix = topics.point_suffix(topic, device)
    if suffix in ("status", "ts"):
        return "", suffix
    parts = suffix.split("/")
    if len(parts) < 2 or parts[0] in IGNORED_LEAVES or parts[0] == "set":
        return None
    return parts[0], "/".join(parts[1:])


class ControllerService:
    """`bess-edge controller`: one Controller, one MQTT connection, one loop."""

    name = "controller"

    def __init__(
        self,
        site: str,
        broker: BrokerSettings,
        settings: ControllerSettings,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        client_id: str | None = None,
    ) -> None:
        self.topics = Topics(site)
        self.broker = broker
        self.settings = settings
        self.clock = clock
        self.wall = wall
        self.client_id = client_id or f"controller-{site}"
        self.controller: Controller | None = None
        self._running = False
        self._dirty = False
        self._client: MqttClient | None = None

    async def run(self, stop: asyncio.Event) -> None:
        if self._running:
            raise RuntimeError("this controller service is already running (one loop only)")
        self._running = True
        try:
            await self._run(stop)
        finally:
            self._running = False

    async def _run(self, stop: asyncio.Event) -> None:
        t, s = self.topics, self.settings
        client = MqttClient(
            self.broker,
            self.client_id,
            will=Will(t.controller_status),
            session_expiry_s=SESSION_EXPIRY_S,
        )
        self._client = client
        requester = Requester(client, t)
        telemetry = Telemetry(self.clock)
        profile = profile_class(s)(s, MqttWriter(requester, t, s.write_timeout_s), telemetry)
        jobs = Jobs()  # every task of the controller's work is made and cancelled here
        ctl = Controller(
            s,
            profile,
            telemetry,
            clock=self.clock,
            wall=self.wall,
            on_event=self._publish_event,
            on_change=self._mark_dirty,
            jobs=jobs,
        )
        self.controller = ctl
        for device in (s.battery, s.inverter, s.meter, s.pv):
            if device:
                client.subscribe(f"{t.device(device)}/#", self._device_handler(device), qos=1)

        async def on_command(req: Request) -> dict[str, Any]:
            name = Topics.last_level(req.topic)
            try:
                return await ctl.command(name, req.body)
            except Refused as r:
                raise RpcError(r.code, r.message, state=ctl.state) from None

        serve(client, t.controller_cmd_filter, on_command)
        client.on_connect(self._on_connect)
        try:
            await client.start()
        except TimeoutError:
            log.error(
                "broker %s:%s not answering; retrying in the background",
                self.broker.host,
                self.broker.port,
            )
        last_publish = -1e18
        try:
            while not stop.is_set():
                ctl.tick()
                now = self.clock()
                if self._dirty or now - last_publish >= s.state_publish_s:
                    self._publish_state()
                    last_publish = now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), s.tick_s)
        finally:
            await jobs.close()
            self._publish_state()
            await client.stop()

    # -- MQTT callbacks ----------------------------------------------------------------------
    def _on_connect(self) -> None:
        assert self._client is not None
        self._client.publish(self.topics.controller_status, "online", qos=1, retain=True)
        self._publish_state()
        # paho re-sends QoS 1 messages that were in flight when the link dropped, from its own
        # thread and possibly after the publish above; one of them can be an older retained
        # state. Publishing again shortly after makes the retained state converge at once
        # instead of at the next state_publish_s.
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_later(RECONNECT_REPUBLISH_S, self._publish_state)

    def _device_handler(self, device: str) -> Callable[[Message], None]:
        def handle(msg: Message) -> None:
            ctl = self.controller
            if ctl is None:
                return
            try:
                parsed = parse_device_topic(self.topics, device, msg.topic)
            except ValueError:
                return
            if parsed is None:
                return
            model, point = parsed
            if point == "status" and not model:
                ctl.on_status(device, msg.payload.decode("utf-8", "replace").strip())
                return
            try:
                value = jsonutil.loads(msg.payload) if msg.payload else None
            except (ValueError, UnicodeDecodeError):
                log.warning("ignoring non-JSON value on %s", msg.topic)
                return
            if isinstance(value, dict | list):
                return
            ctl.on_point(device, model, point, value)

        return handle

    def _mark_dirty(self) -> None:
        """State changed: publish at once (coalescing changes made in the same loop turn)."""
        if self._dirty:
            return
        self._dirty = True
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_soon(self._publish_state)

    def _publish_state(self) -> None:
        self._dirty = False
        if self._client is None or self.controller is None:
            return
        if not self._client.connected:
            # Not queued: paho would send a queued (retained, QoS 1) state after the reconnect,
            # possibly after a newer one, and the broker would keep the stale one as retained.
            # _on_connect publishes the state as it is then.
            return
        self._client.publish(
            self.topics.controller_state,
            jsonutil.dumps(self.controller.snapshot()),
            qos=1,
            retain=True,
        )

    def _publish_event(self, event: dict[str, Any]) -> None:
        if self._client is None:
            return
        try:
            payload = jsonutil.dumps(event)
        except ValueError:
            log.error("event not serialisable: %r", event)
            return
        self._client.publish(self.topics.controller_events, payload, qos=1)
