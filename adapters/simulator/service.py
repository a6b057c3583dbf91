"""`bess-edge sim`: the simulator as a service, with fault injection over MQTT.

Modbus comes up first and does not depend on the broker: if the broker is unreachable the
simulator still serves its devices, and `{root}/sim/+/cmd/+` is answered once paho's
background reconnect succeeds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from adapters.simulator.device import InjectError
from adapters.simulator.site import SiteSimulator
from edge.config.site import SiteConfig
from edge.mqtt import MqttClient, RpcError, Topics, Will, serve
from edge.mqtt.rpc import Request
from edge.services import Service

log = logging.getLogger(__name__)

BROKER_WAIT_S = 2.0


def attach_mqtt(sim: SiteSimulator, client: MqttClient, topics: Topics) -> None:
    """Answer fault-injection requests for `sim` on `client` and announce `online`."""

    async def handle(request: Request) -> dict[str, Any]:
        parts = request.topic.split("/")
        device, action = parts[-3], parts[-1]
        try:
            return {"device": device, "action": action, **sim.inject(device, action, request.body)}
        except InjectError as exc:
            raise RpcError(exc.code, exc.message) from None

    def announce() -> None:
        client.publish(topics.sim_status, "online", qos=1, retain=True)

    serve(client, topics.sim_cmd_filter, handle)
    client.on_connect(announce)


class SimService:
    name = "sim"

    def __init__(self, site: SiteConfig) -> None:
        self.site = site
        self.sim = SiteSimulator.from_config(site)
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        topics = Topics(self.site.site)
        await self.sim.start()
        for name, port in self.sim.ports.items():
            print(f"sim {name}: modbus tcp {self.sim.config.host}:{port}", flush=True)
        self.ready.set()
        client = MqttClient(
            self.site.broker,
            client_id=f"sim-{self.site.site}",
            will=Will(topics.sim_status),
        )
        attach_mqtt(self.sim, client, topics)
        try:
            try:
                await client.start(timeout=BROKER_WAIT_S)
            except TimeoutError:
                b = self.site.broker
                log.warning(
                    "broker %s:%s not reachable; serving Modbus, retrying MQTT", b.host, b.port
                )
            await stop.wait()
        finally:
            await client.stop()
            await self.sim.stop()


def make_services(site: SiteConfig) -> list[Service]:
    if site.simulator is None or not site.simulator.devices:
        return []
    return [SimService(site)]
