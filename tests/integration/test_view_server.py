"""The view's server over the network, as a browser or a script meets it: TLS, login (401,
then 429), the viewer refused by the server, the event stream, and a command's reply."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge.bridge.pki import make_pki, openssl_available
from edge.mqtt import BrokerSettings, MqttClient
from edge.view.config import ViewSchema
from edge.view.service import ViewService
from tests.broker import Broker
from tests.integration.view_site import PASSWORDS, ROLES, users

pytestmark = pytest.mark.broker


async def _serve(
    broker: Broker, **view: Any
) -> tuple[ViewService, asyncio.Event, asyncio.Task[None]]:
    cfg = ViewSchema().load({"port": 0, **view})
    svc = ViewService("v1", BrokerSettings(broker.host, broker.port), cfg, ROLES)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    await asyncio.wait_for(svc.ready.wait(), 10)
    return svc, stop, task


def _jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)  # keep cookies of an IP address host, as a browser does


async def _login(http: aiohttp.ClientSession, url: str, user: str, password: str) -> int:
    async with http.post(f"{url}/api/login", json={"user": user, "password": password}) as r:
        return r.status


@pytest.mark.skipif(not openssl_available(), reason="needs the openssl CLI")
def test_tls_login_rate_limit_and_roles(broker: Broker, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    cert, key = pki.server
    client_ctx = ssl.create_default_context(cafile=str(pki.ca))

    async def main() -> None:
        svc, stop, task = await _serve(
            broker,
            users=users(),
            tls={"cert_file": str(cert), "key_file": str(key)},
            login_failures=3,
            command_timeout_s=0.5,
        )
        url = svc.url
        assert url.startswith("https://")
        try:
            # plain HTTP to the TLS port gets nowhere
            async with aiohttp.ClientSession() as plain:
                with pytest.raises(aiohttp.ClientError):
                    await plain.get(url.replace("https", "http") + "/api/me")
            conn = aiohttp.TCPConnector(ssl=client_ctx)
            async with aiohttp.ClientSession(connector=conn, cookie_jar=_jar()) as http:
                async with http.get(f"{url}/api/me") as r:
                    assert r.status == 401
                async with http.get(f"{url}/api/stream") as r:
                    assert r.status == 401
                async with http.post(f"{url}/api/cmd/stop", json={}) as r:
                    assert r.status == 401
                assert await _login(http, url, "vw", "wrong") == 401
                assert await _login(http, url, "nobody", "wrong") == 401
                assert await _login(http, url, "vw", "wrong again") == 401
                # three failures from this address: even the right password waits now
                async with http.post(
                    f"{url}/api/login", json={"user": "vw", "password": PASSWORDS["vw"]}
                ) as r:
                    assert r.status == 429
                    assert int(r.headers["Retry-After"]) >= 1
                    assert "try again" in (await r.json())["error"]["message"]
                async with http.post(f"{url}/api/login", data=b"not json") as r:
                    assert r.status == 400
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

        svc, stop, task = await _serve(
            broker,
            users=users(),
            tls={"cert_file": str(cert), "key_file": str(key)},
            command_timeout_s=0.5,
        )
        url = svc.url
        try:
            conn = aiohttp.TCPConnector(ssl=client_ctx)
            async with aiohttp.ClientSession(connector=conn, cookie_jar=_jar()) as http:
                async with http.post(
                    f"{url}/api/login", json={"user": "vw", "password": PASSWORDS["vw"]}
                ) as r:
                    assert r.status == 200 and (await r.json())["role"] == "viewer"
                    morsel = r.cookies["bess_view"]
                    assert (
                        morsel["httponly"] and morsel["secure"] and morsel["samesite"] == "Strict"
                    )
                for cmd in ("stop", "start", "charge"):
                    async with http.post(f"{url}/api/cmd/{cmd}", json={"power_w": 1}) as r:
                        assert r.status == 403
                        assert (await r.json())["error"]["code"] == "forbidden"
                assert svc.server is not None and svc.server.commands_sent == 0
                await http.post(f"{url}/api/logout")
                assert await _login(http, url, "op", PASSWORDS["op"]) == 200
                # no controller on this broker: the operator is told so, within the timeout
                async with http.post(f"{url}/api/cmd/start", json={}) as r:
                    body = await r.json()
                    assert body["reply"]["error"]["code"] == "timeout"
                async with http.post(f"{url}/api/cmd/explode", json={}) as r:
                    assert (
                        r.status == 400 and (await r.json())["error"]["code"] == "unknown_command"
                    )
                async with http.post(
                    f"{url}/api/cmd/charge",
                    data=b"[1]",
                    headers={"Content-Type": "application/json"},
                ) as r:
                    assert r.status == 400 and "JSON object" in (await r.json())["error"]["message"]
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(main())


def test_stream_pushes_snapshot_then_changes(broker: Broker) -> None:
    async def main() -> None:
        svc, stop, task = await _serve(broker)  # loopback, no users: anonymous operator
        pub = MqttClient(BrokerSettings(broker.host, broker.port), "v1-pub")
        await pub.start()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{svc.url}/api/me") as r:
                    assert (await r.json())["role"] == "operator"
                async with http.get(f"{svc.url}/api/stream") as r:
                    assert r.headers["Content-Type"].startswith("text/event-stream")
                    first = json.loads((await r.content.readline())[6:])
                    assert first["kind"] == "snapshot" and first["site"] == "v1"
                    await r.content.readline()
                    pub.publish("bess/v1/bat/802/SoC", "61.5", retain=False)
                    pub.publish("bess/v1/controller/state", json.dumps({"state": "holding"}))
                    seen: dict[str, Any] = {}
                    async with asyncio.timeout(5):
                        while "controller" not in seen or "devices" not in seen:
                            line = await r.content.readline()
                            if line.startswith(b"data: "):
                                seen.update(json.loads(line[6:]))
                    assert seen["kind"] == "delta"
                    assert seen["devices"]["bat"]["values"]["802/SoC"] == 61.5
                    assert seen["controller"]["state"]["state"] == "holding"
                async with http.get(f"{svc.url}/api/trend?range=hour") as r:
                    assert r.status == 404  # no [history] on this site
                async with http.get(f"{svc.url}/api/trend?range=year") as r:
                    assert r.status == 400
                async with http.get(f"{svc.url}/static/uPlot.iife.min.js") as r:
                    assert r.status == 200 and b"uPlot" in await r.read()
                async with http.get(f"{svc.url}/static/..%2Fserver.py") as r:
                    assert r.status == 404
        finally:
            await pub.stop()
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(main())


def test_anonymous_none_requires_nothing_but_gives_nothing(broker: Broker) -> None:
    async def main() -> None:
        svc, stop, task = await _serve(broker, anonymous="none")
        try:
            async with aiohttp.ClientSession() as http:
                for path in ("/api/me", "/api/stream"):
                    async with http.get(f"{svc.url}{path}") as r:
                        assert r.status == 401
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(main())


def test_a_busy_port_or_unwritable_history_never_stops_the_site(
    broker: Broker, tmp_path: Path
) -> None:
    import socket

    from edge.history.config import HistorySchema
    from edge.history.recorder import RecorderService

    async def main() -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            cfg = ViewSchema().load({"port": busy.getsockname()[1]})
            svc = ViewService("v1", BrokerSettings(broker.host, broker.port), cfg, ROLES)
            (tmp_path / "file").write_text("")
            hcfg = HistorySchema().load({"path": str(tmp_path / "file" / "h.sqlite")})
            rec = RecorderService("v1", BrokerSettings(broker.host, broker.port), hcfg)
            stop = asyncio.Event()
            tasks = [asyncio.create_task(svc.run(stop)), asyncio.create_task(rec.run(stop))]
            await asyncio.sleep(1.0)
            assert not any(t.done() for t in tasks)  # both wait and retry; nothing raised
            assert not svc.ready.is_set()
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)

    asyncio.run(main())


def test_unusable_tls_files_are_a_config_error(tmp_path: Path, capsys: Any) -> None:
    from edge.cli import main

    site = tmp_path / "site.toml"
    site.write_text(
        '[site]\nid = "v1"\n[view]\nhost = "0.0.0.0"\n'
        '[view.tls]\ncert_file = "/nonexistent.pem"\nkey_file = "/nonexistent.key"\n'
        '[[view.users]]\nname = "a"\nrole = "viewer"\n'
        'password_hash = "scrypt$1024$8$1$c2FsdHNhbHQ=$a2V5a2V5a2V5a2V5a2V5a2V5"\n'
    )
    assert main(["view", "-c", str(site)]) == 2
    assert "view.tls.cert_file: cannot load" in capsys.readouterr().err


def test_anonymous_access_only_under_a_loopback_host_name(broker: Broker) -> None:
    async def main() -> None:
        svc, stop, task = await _serve(broker)
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{svc.url}/api/me", headers={"Host": "evil.example"}) as r:
                    assert r.status == 401  # a rebound name is not the gateway's own
                url = f"http://localhost:{svc.port}/api/me"
                async with http.get(url) as r:
                    assert r.status == 200
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(main())
