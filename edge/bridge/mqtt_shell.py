"""The bridge's MQTT side: one connection (and will) per 2030.5 device, like the adapters.

Publishes status, meta, points and ts per topics.md; answers `set/124/WChaMax` and `set/derc`
through edge.mqtt.rpc.serve. The core calls in (Sink) synchronously; publishing never blocks.
The shell never holds the core: set requests go to the `Control` callable the service wires in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from edge.bridge import mapping
from edge.bridge.controls import ControlError
from edge.bridge.state import Device
from edge.mqtt import jsonutil
from edge.mqtt.client import BrokerSettings, MqttClient, Will
from edge.mqtt.rpc import Request, RpcError, serve
from edge.mqtt.topics import Topics

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 5.0
Control = Callable[[str, str, dict[str, Any]], dict[str, Any]]  # (device, key, body) -> reply


def _no_control(name: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    raise ControlError("unknown_point", "the bridge is not accepting set requests yet")


class DeviceLink:
    """The MQTT connection of one 2030.5 device."""

    def __init__(self, shell: BridgeMqtt, dev: Device) -> None:
        self.shell = shell
        self.dev = dev
        t = shell.topics
        self.client = MqttClient(
            broker=replace(shell.broker),
            client_id=f"bess-bridge-{t.site}-{dev.name}",
            will=Will(t.status(dev.name)),
        )
        self.values: dict[str, Any] = {}
        self.online = False
        self.last_full = 0.0
        self.client.on_connect(self._on_connect)
        serve(self.client, t.set_filter(dev.name), self._on_set)

    async def start(self) -> None:
        try:
            await self.client.start(timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:
            log.warning("broker not reachable for %s; retrying in the background", self.dev.name)

    async def stop(self) -> None:
        await self.client.stop()

    def _on_connect(self) -> None:
        self.publish_meta()
        self.publish_status()
        self.publish_values(self.values)

    def meta(self) -> dict[str, Any]:
        return {
            "device": self.dev.name,
            "kind": "ieee2030_5",
            # model 1 as in topics.md; 2030.5 has no manufacturer name, hence Mn null
            "identity": {
                "Mn": None,
                "Md": self.values.get(mapping.MD),
                "SN": str(self.dev.sfdi),
                "Vr": self.values.get(mapping.VR),
                "lfdi": self.dev.lfdi,
            },
            "models": mapping.MODELS,
            "points": {
                k: {x: v[x] for x in ("unit", "type", "access")} for k, v in mapping.POINTS.items()
            },
        }

    def publish_status(self) -> None:
        self.client.publish(
            self.shell.topics.status(self.dev.name),
            "online" if self.online else "offline",
            qos=1,
            retain=True,
        )

    def update(self, values: dict[str, Any]) -> None:
        identity_changed = any(
            k in mapping.IDENTITY_POINTS and self.values.get(k) != v for k, v in values.items()
        )
        self.values.update(values)
        self.publish_values(values)
        if identity_changed:
            self.publish_meta()

    def publish_meta(self) -> None:
        t = self.shell.topics
        self.client.publish(t.meta(self.dev.name), jsonutil.dumps(self.meta()), qos=1, retain=True)

    def publish_values(self, values: dict[str, Any]) -> None:
        if not values:
            return
        t = self.shell.topics
        expiry = int(3 * self.shell.refresh_s)
        for suffix, value in values.items():
            model, point = suffix.split("/", 1)
            self.client.publish(
                t.point(self.dev.name, model, point),
                jsonutil.dumps(value),
                qos=0,
                retain=True,
                expiry_s=expiry,
            )
        self.client.publish(
            t.ts(self.dev.name),
            jsonutil.dumps(round(self.shell.clock(), 3)),
            retain=True,
            expiry_s=expiry,
        )

    async def _on_set(self, req: Request) -> dict[str, Any]:
        t = self.shell.topics
        try:
            if req.topic == t.derc(self.dev.name):
                key = "derc"
            elif req.topic == t.dderc(self.dev.name):
                key = "dderc"
            else:
                _, model, point = t.parse_set(req.topic)
                key = f"{model}/{point}"
            return self.shell.control(self.dev.name, key, req.body)
        except ControlError as exc:
            raise RpcError(exc.code, exc.message) from None
        except ValueError as exc:
            raise RpcError("unknown_point", str(exc)) from None


class BridgeMqtt:
    """Sink for BridgeCore: creates a DeviceLink per device, keeps status and refresh going."""

    def __init__(
        self,
        broker: BrokerSettings,
        topics: Topics,
        refresh_s: float,
        offline_after_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.broker = broker
        self.topics = topics
        self.refresh_s = refresh_s
        self.offline_after_s = offline_after_s
        self.clock = clock
        self.links: dict[str, DeviceLink] = {}
        self._starting: set[asyncio.Task[None]] = set()
        self.control: Control = _no_control  # the service wires in BridgeCore.control

    # -- Sink ------------------------------------------------------------------------------
    def device_added(self, dev: Device) -> None:
        if dev.name in self.links:
            return
        link = DeviceLink(self, dev)
        self.links[dev.name] = link
        task = asyncio.get_running_loop().create_task(link.start())
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    def device_removed(self, dev: Device) -> None:
        """Deregistered: say so (offline), then close its connection."""
        link = self.links.pop(dev.name, None)
        if link is None:
            return
        link.online = False
        link.publish_status()
        task = asyncio.get_running_loop().create_task(link.stop())
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    def points(self, dev: Device, values: dict[str, Any]) -> None:
        link = self.links.get(dev.name)
        if link is not None:
            self.tick_one(link)
            link.update(values)

    def event(self, dev: Device, body: dict[str, Any]) -> None:
        link = self.links.get(dev.name)
        if link is not None:
            link.client.publish(self.topics.events(dev.name), jsonutil.dumps(body), qos=1)

    # -- periodic --------------------------------------------------------------------------
    def tick_one(self, link: DeviceLink) -> None:
        now = self.clock()
        seen = link.dev.last_seen
        online = seen is not None and now - seen <= self.offline_after_s
        if online != link.online:
            link.online = online
            link.publish_status()
        if online and now - link.last_full >= self.refresh_s:
            link.last_full = now
            link.publish_values(link.values)

    def tick(self) -> None:
        for link in list(self.links.values()):
            self.tick_one(link)

    async def stop(self) -> None:
        for task in list(self._starting):
            await asyncio.wait([task], timeout=CONNECT_TIMEOUT_S)
        await asyncio.gather(*(link.stop() for link in self.links.values()), return_exceptions=True)
