"""`bess-edge bridge`: the 2030.5 HTTPS server plus its MQTT side, as one Service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from edge.bridge.config import BridgeConfig
from edge.bridge.controls import ControlError
from edge.bridge.core import BridgeCore
from edge.bridge.http import TlsSetupError, make_ssl_context, start_server
from edge.bridge.mqtt_shell import CONNECT_TIMEOUT_S, BridgeMqtt
from edge.bridge.notify import Notifier, NotifySettings, client_context
from edge.config.errors import ConfigError
from edge.config.site import SiteConfig
from edge.mqtt.client import BrokerSettings, MqttClient, Will
from edge.mqtt.rpc import Request, RpcError, serve
from edge.mqtt.topics import Topics
from edge.services import Service

log = logging.getLogger(__name__)
TICK_S = 0.5


class BridgeService:
    name = "bridge"

    def __init__(
        self,
        site: str,
        broker: BrokerSettings,
        cfg: BridgeConfig,
        clock: Callable[[], float] = time.time,
        tick_s: float = TICK_S,
        ssl_context: ssl.SSLContext | None = None,
        notify_settings: NotifySettings | None = None,
    ) -> None:
        self.topics = Topics(site)
        self.broker = broker
        self.cfg = cfg
        self.clock = clock
        self.tick_s = tick_s
        self.mqtt = BridgeMqtt(broker, self.topics, cfg.refresh_s, cfg.offline_after_s, clock)
        self.core = BridgeCore(cfg, clock, self.mqtt)
        self.mqtt.control = self.core.control
        self.ssl_context = ssl_context
        self.notifier = Notifier(client_context(cfg.tls), notify_settings or NotifySettings())
        self.core.server.notify_stats = self.notifier.stats
        self.port: int | None = None
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        # Transport problems are configuration errors: fail before touching the broker.
        ssl_ctx = self.ssl_context
        if ssl_ctx is None and self.cfg.tls is not None:
            ssl_ctx = make_ssl_context(self.cfg.tls)
        if ssl_ctx is None and self.cfg.proxy is None:
            raise TlsSetupError("bridge: refusing plain HTTP without [bridge.proxy]")
        status = MqttClient(
            broker=self.broker,
            client_id=f"bess-bridge-{self.topics.site}",
            will=Will(self.topics.bridge_status),
        )

        def announce() -> None:
            status.publish(self.topics.bridge_status, "online", qos=1, retain=True)

        status.on_connect(announce)

        async def on_admin(req: Request) -> dict[str, Any]:
            try:
                return self.core.admin(Topics.last_level(req.topic), req.body)
            except ControlError as exc:
                raise RpcError(exc.code, exc.message) from None

        serve(status, self.topics.bridge_admin_filter, on_admin)
        try:
            try:
                await status.start(timeout=CONNECT_TIMEOUT_S)
            except TimeoutError:
                log.warning(
                    "broker %s:%s not reachable; retrying", self.broker.host, self.broker.port
                )
            self.core.start()
            runner, self.port = await start_server(self.core, self.cfg, ssl_ctx)
            if self.cfg.port == 0:  # an ephemeral port: absolute URIs name the bound one
                self.core.server.cfg = replace(self.core.server.cfg, port=self.port)
            log.info(
                "2030.5 bridge listening on %s:%s (%s)",
                self.cfg.host,
                self.port,
                "HTTPS" if ssl_ctx else "plain HTTP behind a trusted proxy",
            )
            await self.notifier.start()
            self.ready.set()
            try:
                while not stop.is_set():
                    self.core.tick()
                    self.mqtt.tick()
                    self.send_notifications()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.tick_s)
            finally:
                await self.notifier.stop()
                await runner.cleanup()
        finally:
            await self.mqtt.stop()
            await status.stop()

    def send_notifications(self) -> None:
        """Hand what the core queued to the notifier (which never blocks)."""
        outbox = self.core.server.outbox
        while outbox:
            self.notifier.submit(outbox.pop(0))


def make_services(site: SiteConfig) -> list[Service]:
    """The bridge, if the site has a [bridge]. Unusable TLS files are config errors (exit 2)."""
    cfg: BridgeConfig | None = site.bridge
    if cfg is None:
        return []
    try:
        ctx = make_ssl_context(cfg.tls) if cfg.tls is not None else None
    except TlsSetupError as exc:
        raise ConfigError(site.path, [("bridge.tls", str(exc))]) from None
    return [BridgeService(site.site, site.broker, cfg, ssl_context=ctx)]
