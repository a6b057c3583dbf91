"""`bess-edge homeassistant`: publishes the discovery configs, retained, as a Service.

Configs are published on every (re)connect and again whenever Home Assistant announces itself
on `homeassistant/status` (`online`), so a Home Assistant whose broker lost retained messages
still finds the site. The entities themselves talk to the tree and the controller directly.
"""

from __future__ import annotations

import asyncio
import logging

from edge.config.site import SiteConfig
from edge.homeassistant.config import HomeAssistantConfig
from edge.homeassistant.discovery import Discovery
from edge.mqtt import jsonutil
from edge.mqtt.client import BrokerSettings, Message, MqttClient
from edge.mqtt.topics import ha_status
from edge.services import Service

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 5.0


class HomeAssistantService:
    name = "homeassistant"

    def __init__(self, site: str, broker: BrokerSettings, cfg: HomeAssistantConfig) -> None:
        self.discovery = Discovery(site, cfg)
        self.cfg = cfg
        self.client = MqttClient(broker, client_id=f"bess-homeassistant-{site}")
        self.published = 0

    def publish_all(self) -> None:
        for topic, config in self.discovery.configs().items():
            self.client.publish(topic, jsonutil.dumps(config), qos=1, retain=True)
            self.published += 1

    def _on_ha_status(self, msg: Message) -> None:
        if msg.payload == b"online":
            log.info("Home Assistant announced itself: republishing discovery")
            self.publish_all()

    async def run(self, stop: asyncio.Event) -> None:
        c = self.client
        c.subscribe(ha_status(self.cfg.prefix), self._on_ha_status, qos=1)
        c.on_connect(self.publish_all)
        try:
            await c.start(timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:
            log.warning("homeassistant: broker not reachable; retrying")
        try:
            await stop.wait()
        finally:
            await c.stop()


def make_services(site: SiteConfig) -> list[Service]:
    """Discovery when the site file has an enabled [homeassistant] section."""
    cfg: HomeAssistantConfig | None = site.section("homeassistant")
    if cfg is None or not cfg.enabled:
        return []
    return [HomeAssistantService(site.site, site.broker, cfg)]
