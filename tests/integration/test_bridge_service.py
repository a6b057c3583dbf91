"""The bridge as users run it: `bess-edge bridge -c site.toml`, and behind a trusted proxy."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge.bridge.config import BridgeConfig, BridgeProxy
from edge.mqtt.topics import Topics
from tests.integration.test_bridge_exchange import SITE, Device2030, running_bridge, session_for
from tests.integration.test_bridge_pki import make_pki

pytestmark = pytest.mark.broker
T = Topics(SITE)
BESS_EDGE = Path(sys.executable).with_name("bess-edge")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_runs_the_bridge(tmp_path: Path, broker: Any, probe_factory: Any) -> None:
    pki = make_pki(tmp_path / "pki", "bat")
    cert, key = pki.server
    port = free_port()
    site = tmp_path / "site.toml"
    site.write_text(
        f'[site]\nid = "{SITE}"\n[broker]\nhost = "{broker.host}"\nport = {broker.port}\n'
        f'[bridge]\nhost = "127.0.0.1"\nport = {port}\noffline_after_s = 1\n'
        f'[bridge.tls]\ncert_file = "{cert}"\nkey_file = "{key}"\nca_file = "{pki.ca}"\n'
        f'[[bridge.devices]]\nname = "bat"\nlfdi = "{pki.lfdi("bat")}"\nsfdi = {pki.sfdi("bat")}\n'
    )
    probe = probe_factory(f"{T.root}/#")
    proc = subprocess.Popen([str(BESS_EDGE), "bridge", "-c", str(site)], stderr=subprocess.PIPE)
    try:
        probe.wait_for(T.bridge_status, lambda m: m.payload == b"online", timeout=10)
        assert probe.wait_for(T.meta("bat")).json()["kind"] == "ieee2030_5"
        probe.wait_for(T.status("bat"), lambda m: m.payload == b"offline")  # not heard from yet

        async def poll() -> None:
            async with session_for(pki, "bat") as s:
                assert (await Device2030(s, f"https://127.0.0.1:{port}").get("/dcap")) is not None

        probe.clear()
        asyncio.run(poll())
        probe.wait_for(T.status("bat"), lambda m: m.payload == b"online")
        # silence for longer than offline_after_s: the device is announced offline
        probe.wait_for(T.status("bat"), lambda m: m.payload == b"offline", timeout=5)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(10)
        finally:
            proc.kill()
    assert rc == 0, proc.stderr.read().decode() if proc.stderr else ""
    probe.wait_for(T.bridge_status, lambda m: m.payload == b"offline")


def test_plain_http_is_a_config_error(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text('[site]\nid = "s1"\n[bridge]\nport = 8080\n')
    out = subprocess.run(
        [str(BESS_EDGE), "check-config", "-c", str(site)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "bridge.tls" in out.stderr


def test_unusable_tls_files_are_a_config_error(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        '[site]\nid = "s1"\n[bridge]\nport = 0\n[bridge.tls]\n'
        f'cert_file = "{tmp_path}/nope.pem"\nkey_file = "{tmp_path}/nope.key"\nca_file = "x"\n'
    )
    out = subprocess.run(
        [str(BESS_EDGE), "bridge", "-c", str(site)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2, out.stderr
    assert "bridge.tls" in out.stderr and "cert_file" in out.stderr


def test_trusted_proxy_mode(tmp_path: Path, broker: Any) -> None:
    pki = make_pki(tmp_path / "pki", "bat")
    from edge.bridge.config import BridgeDevice

    dev = BridgeDevice("bat", pki.lfdi("bat"), pki.sfdi("bat"), None)
    header = {"X-Forwarded-Client-Cert": urllib.parse.quote(pki.devices["bat"][0].read_text())}

    async def call(port: int, headers: dict[str, str] | None) -> int:
        timeout = aiohttp.ClientTimeout(total=5)
        url = f"http://127.0.0.1:{port}/edev/1"
        async with aiohttp.ClientSession(timeout=timeout) as s, s.get(url, headers=headers) as r:
            return r.status

    cfg = BridgeConfig(host="127.0.0.1", port=0, proxy=BridgeProxy(), devices=(dev,))
    with running_bridge(cfg, broker) as svc:
        assert svc.port is not None
        assert asyncio.run(call(svc.port, header)) == 200
        assert asyncio.run(call(svc.port, None)) == 403
    untrusted = BridgeConfig(
        host="127.0.0.1", port=0, proxy=BridgeProxy(allowed_peers=("10.9.9.9",)), devices=(dev,)
    )
    with running_bridge(untrusted, broker) as svc:
        assert svc.port is not None
        assert (
            asyncio.run(call(svc.port, header)) == 403
        )  # not from the proxy: the header is not trusted


def test_no_transport_configured_refuses_to_start(broker: Any) -> None:
    with (
        pytest.raises(ValueError, match="plain HTTP"),
        running_bridge(BridgeConfig(port=0), broker),
    ):
        pass
