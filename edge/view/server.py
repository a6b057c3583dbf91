"""The page's HTTP side (aiohttp): static files, login, the event stream, trends, commands.

Roles are enforced here, not in the page: a viewer's command request is refused with 403
whatever the page shows. With no users configured (allowed on loopback only, see config),
every visitor has the `anonymous` role.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path

from aiohttp import web

from edge.mqtt.rpc import Requester
from edge.mqtt.topics import Topics
from edge.view.auth import RateLimiter, Session, Sessions, verify_password
from edge.view.config import ViewConfig
from edge.view.push import Hub
from edge.view.trends import RANGES, read_trend

log = logging.getLogger(__name__)
COOKIE = "bess_view"
COMMANDS = ("start", "stop", "hold", "reset", "charge", "discharge", "mode", "schedule")
MAX_BODY = 64 * 1024
STATIC = files("edge.view") / "static"
STATIC_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".VERSION": "text/plain",
    ".LICENSE": "text/plain",
}
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
HEARTBEAT_S = 15.0
WRITE_TIMEOUT_S = 10.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    body = {"ok": False, "error": {"code": code, "message": message}}
    return web.json_response(body, status=status, headers=headers or None)


class ViewServer:
    def __init__(
        self,
        cfg: ViewConfig,
        site: str,
        hub: Hub,
        requester: Requester | None,
        history_path: Path | None,
        stop: asyncio.Event,
    ) -> None:
        self.cfg = cfg
        self.topics = Topics(site)
        self.hub = hub
        self.requester = requester
        self.history_path = history_path
        self.stop = stop
        self.users = {u.name: u for u in cfg.users}
        self.sessions = Sessions(cfg.session_s)
        self.limiter = RateLimiter(cfg.login_failures, cfg.login_window_s)
        self.commands_sent = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._headers])
        app.router.add_get("/", self.index)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_post("/api/login", self.login)
        app.router.add_post("/api/logout", self.logout)
        app.router.add_get("/api/me", self.me)
        app.router.add_get("/api/stream", self.stream)
        app.router.add_get("/api/trend", self.trend)
        app.router.add_post("/api/cmd/{name}", self.command)
        return app

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        resp = await handler(request)
        resp.headers.setdefault("Cache-Control", "no-store")
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Content-Security-Policy"] = (
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"
        )
        return resp

    # -- who is asking ---------------------------------------------------------------------
    def session(self, request: web.Request) -> Session | None:
        if not self.users:
            # anonymous access is for loopback only; a page of another site that resolves
            # its own name to 127.0.0.1 (DNS rebinding) sends that name as Host: refuse it
            if self.cfg.anonymous == "none" or (request.url.host or "") not in LOCAL_HOSTS:
                return None
            return Session("anonymous", self.cfg.anonymous, float("inf"))
        return self.sessions.get(request.cookies.get(COOKIE))

    # -- pages -----------------------------------------------------------------------------
    async def index(self, _request: web.Request) -> web.StreamResponse:
        return web.Response(body=(STATIC / "index.html").read_bytes(), content_type="text/html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if "/" in name or name.startswith(".") or not (STATIC / name).is_file():
            raise web.HTTPNotFound()
        ctype = STATIC_TYPES.get(Path(name).suffix, "application/octet-stream")
        resp = web.Response(body=(STATIC / name).read_bytes(), content_type=ctype)
        resp.headers["Cache-Control"] = "max-age=3600"
        return resp

    # -- login -----------------------------------------------------------------------------
    async def login(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
            user, password = body["user"], body["password"]
            if not isinstance(user, str) or not isinstance(password, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return _error(400, "invalid_payload", 'body: expected {"user": ..., "password": ...}')
        peer = request.remote or "?"
        wait = max(self.limiter.retry_after(f"ip:{peer}"), self.limiter.retry_after(f"u:{user}"))
        if wait > 0:
            return _error(
                429,
                "rate_limited",
                f"too many wrong passwords; try again in {wait:.0f} s",
                **{"Retry-After": str(int(wait) + 1)},
            )
        known = self.users.get(user)
        ok = known is not None and await asyncio.to_thread(
            verify_password, password, known.password_hash
        )
        if not ok or known is None:
            self.limiter.failure(f"ip:{peer}")
            self.limiter.failure(f"u:{user}")
            log.warning("view: wrong password for %r from %s", user, peer)
            return _error(401, "unauthorized", "wrong user name or password")
        token = self.sessions.create(known.name, known.role)
        resp = web.json_response({"ok": True, "user": known.name, "role": known.role})
        resp.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="Strict",
            secure=self.cfg.tls is not None,
            max_age=self.cfg.session_s,
        )
        return resp

    async def logout(self, request: web.Request) -> web.StreamResponse:
        self.sessions.drop(request.cookies.get(COOKIE))
        resp = web.json_response({"ok": True})
        resp.del_cookie(COOKIE)
        return resp

    async def me(self, request: web.Request) -> web.StreamResponse:
        s = self.session(request)
        if s is None:
            return _error(401, "unauthorized", "log in first")
        return web.json_response(
            {"ok": True, "user": s.user, "role": s.role, "login": bool(self.users)}
        )

    # -- live data -------------------------------------------------------------------------
    async def stream(self, request: web.Request) -> web.StreamResponse:
        if self.session(request) is None:
            return _error(401, "unauthorized", "log in first")
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await resp.prepare(request)
        client, first = self.hub.connect()
        stopper = asyncio.ensure_future(self.stop.wait())
        try:
            await resp.write(first)
            while not self.stop.is_set():
                getter = asyncio.ensure_future(client.queue.get())
                done, _ = await asyncio.wait(
                    [getter, stopper], timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED
                )
                if getter not in done:
                    getter.cancel()
                    if stopper in done:
                        break
                    data = b": ping\n\n"
                else:
                    data = getter.result()
                await asyncio.wait_for(resp.write(data), WRITE_TIMEOUT_S)
        except (ConnectionError, TimeoutError, RuntimeError):
            pass  # the page went away or stopped reading
        finally:
            stopper.cancel()
            self.hub.disconnect(client)
        return resp

    async def trend(self, request: web.Request) -> web.StreamResponse:
        if self.session(request) is None:
            return _error(401, "unauthorized", "log in first")
        name = request.query.get("range", "hour")
        if name not in RANGES:
            return _error(400, "invalid_payload", f"range: one of {', '.join(RANGES)}")
        if self.history_path is None or not self.history_path.exists():
            return _error(404, "no_history", "no [history] recorded on this gateway")
        data = await asyncio.to_thread(
            read_trend, self.history_path, self.hub.model.roles, name, time.time()
        )
        return web.json_response({"ok": True, **data})

    # -- commands --------------------------------------------------------------------------
    async def command(self, request: web.Request) -> web.StreamResponse:
        s = self.session(request)
        if s is None:
            return _error(401, "unauthorized", "log in first")
        name = request.match_info["name"]
        if s.role != "operator":
            log.warning("view: %s (%s) may not send %s: refused", s.user, s.role, name)
            self.hub.model.add_event(
                {"origin": "view", "kind": "refused", "command": name, "user": s.user}
            )
            return _error(403, "forbidden", f"role {s.role!r} may not send commands")
        if name not in COMMANDS:
            return _error(400, "unknown_command", f"command {name!r}: one of {', '.join(COMMANDS)}")
        if request.content_type != "application/json":
            return _error(415, "invalid_payload", "body: send application/json")
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError as exc:
            return _error(400, "invalid_payload", f"body: not JSON ({exc})")
        if not isinstance(body, dict):
            return _error(400, "invalid_payload", "body: expected a JSON object")
        if self.requester is None:
            return _error(503, "offline", "not connected to the broker")
        self.commands_sent += 1
        log.info("view: %s sends %s %s", s.user, name, json.dumps(body))
        try:
            reply = await self.requester.request(
                self.topics.controller_cmd(name), body, timeout=self.cfg.command_timeout_s
            )
        except TimeoutError:
            wait = self.cfg.command_timeout_s
            reply = {
                "ok": False,
                "error": {
                    "code": "timeout",
                    "message": f"no reply from the controller within {wait:g} s",
                },
            }
        self.hub.model.add_event(
            {
                "origin": "view",
                "kind": "command",
                "command": name,
                "user": s.user,
                "ok": bool(reply.get("ok")),
                "error": reply.get("error"),
            }
        )
        with contextlib.suppress(Exception):
            self.hub.push_now()
        return web.json_response({"command": name, "request": body, "reply": reply})
