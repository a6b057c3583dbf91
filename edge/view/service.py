"""`bess-edge view`: the live page, also part of `run` and `demo` (entry point
`bess_edge.services: view`, see edge/services.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path
from typing import Any

from aiohttp import web

from edge.config.errors import ConfigError
from edge.config.site import SiteConfig
from edge.history.config import database_path
from edge.mqtt.client import BrokerSettings, Message, MqttClient
from edge.mqtt.rpc import Requester
from edge.mqtt.topics import Topics
from edge.services import Service
from edge.view.config import ViewConfig, ViewTls
from edge.view.model import SiteModel, SiteRoles
from edge.view.push import Hub
from edge.view.server import ViewServer

log = logging.getLogger(__name__)
BIND_RETRY_S = 10.0


def roles_from_site(site: SiteConfig) -> SiteRoles:
    ctl = site.controller
    names = [getattr(d, "name", "") for d in site.devices]
    bridge = site.bridge
    return SiteRoles(
        battery=getattr(ctl, "battery", None),
        inverter=getattr(ctl, "inverter", None),
        meter=getattr(ctl, "meter", None),
        pv=tuple(n for n in names if n.startswith("pv")),
        der=tuple(d.name for d in getattr(bridge, "devices", ()) or ()),
        refresh_s={d.name: float(d.refresh_s) for d in site.devices if hasattr(d, "refresh_s")},
    )


def ssl_context(tls: ViewTls) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    return ctx


class ViewService:
    name = "view"

    def __init__(
        self,
        site: str,
        broker: BrokerSettings,
        cfg: ViewConfig,
        roles: SiteRoles,
        history: Path | None = None,
    ) -> None:
        self.site = site
        self.broker = broker
        self.cfg = cfg
        self.model = SiteModel(site, roles, stale_s=cfg.stale_s, max_events=cfg.events)
        self.hub = Hub(self.model, cfg.push_s)
        self.history = history
        self.ready = asyncio.Event()
        self.port: int | None = None
        self.server: ViewServer | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.cfg.tls else "http"
        return f"{scheme}://{self.cfg.host}:{self.port}"

    async def run(self, stop: asyncio.Event) -> None:
        ctx = ssl_context(self.cfg.tls) if self.cfg.tls else None
        client = MqttClient(self.broker, f"{self.site}-view")
        client.subscribe(Topics(self.site).all, self._on_message, qos=0)
        requester = Requester(client, Topics(self.site))
        with contextlib.suppress(TimeoutError):
            await client.start()
        self.server = ViewServer(self.cfg, self.site, self.hub, requester, self.history, stop)
        runner = web.AppRunner(self.server.app(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.cfg.host, self.cfg.port, ssl_context=ctx)
        try:
            while not await self._listen(site, stop):
                pass
            if stop.is_set():
                return
            server: Any = site._server
            self.port = int(server.sockets[0].getsockname()[1]) if server else self.cfg.port
            log.info("view: %s", self.url)
            self.ready.set()
            await self.hub.run(stop)
        finally:
            await runner.cleanup()
            await client.stop()

    async def _listen(self, site: web.TCPSite, stop: asyncio.Event) -> bool:
        """True once listening (or stopped). A port in use must not take the controller down
        with the page: say so, and try again."""
        try:
            await site.start()
            return True
        except OSError as exc:
            log.error(
                "view: cannot listen on %s:%s (%s); the rest of the site runs on, retrying in %g s",
                self.cfg.host,
                self.cfg.port,
                exc.strerror or exc,
                BIND_RETRY_S,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), BIND_RETRY_S)
            return stop.is_set()

    def _on_message(self, msg: Message) -> None:
        self.model.on_message(msg.topic, msg.payload)


def make_services(site: SiteConfig) -> list[Service]:
    """The page runs for every site: without a [view] section on http://127.0.0.1:8080."""
    cfg = site.section("view") or ViewConfig()
    if cfg.tls is not None:
        try:
            ssl_context(cfg.tls)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(site.path, [("view.tls.cert_file", f"cannot load: {exc}")]) from None
    return [ViewService(site.site, site.broker, cfg, roles_from_site(site), database_path(site))]
