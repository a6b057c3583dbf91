"""The quick start's `bess-edge demo`, as a process: the built-in demo site (ports moved to
free ones) comes up whole, and the README's charge example works through `bess-edge cmd`."""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from edge.bridge.pki import load_or_make_pki
from edge.demo import BRIDGE_MARKER, DEMO_DEVICE, render_demo_site
from edge.history.store import HistoryStore
from edge.mosquitto import free_port
from tests.broker import Broker
from tests.mqtt_probe import Probe

pytestmark = pytest.mark.broker

EXE = str(Path(sys.executable).parent / "bess-edge")


def _demo_site(tmp_path: Path, broker: Broker) -> Path:
    site = render_demo_site(tmp_path / "demo")
    text = site.read_text().replace("port = 1883", f"port = {broker.port}")
    for fixed in ("15020", "15021", "15022", "15023", "8443", "8080"):
        text = re.sub(rf"\bport = {fixed}\b", f"port = {free_port()}", text)
    site.write_text(text)
    return site


def _cmd(site: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [EXE, "cmd", *args, "-c", str(site)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stdout + out.stderr
    reply: dict[str, Any] = json.loads(out.stdout)
    return reply


def test_demo_runs_the_whole_site_and_charges(tmp_path: Path, broker: Broker) -> None:
    site = _demo_site(tmp_path, broker)
    probe = Probe(broker.host, broker.port, "bess/demo/#")
    proc = subprocess.Popen(
        [EXE, "demo", "--no-broker", "-c", str(site)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for topic in ("battery", "inverter", "meter", "pv"):
            probe.wait_for(f"bess/demo/{topic}/status", lambda m: m.payload == b"online", 20)
        probe.wait_for("bess/demo/controller/state", lambda m: m.json()["state"] == "stopped", 20)
        probe.wait_for("bess/demo/bridge/status", lambda m: m.payload == b"online", 5)
        probe.wait_for("bess/demo/battery/802/SoC", lambda m: m.json() is not None, 5)
        # The demo has solar: the sun is up at the simulated 10:00 start.
        probe.wait_for("bess/demo/pv/701/W", lambda m: (m.json() or 0) > 1000, 10)

        # The demo's 2030.5 device (certificate made by the demo) reaches the bridge over TLS.
        pki = load_or_make_pki(site.parent / "pki", DEMO_DEVICE)
        bridge_port = int(re.findall(r"port = (\d+)", site.read_text().split(BRIDGE_MARKER)[1])[0])
        conn = http.client.HTTPSConnection(
            "127.0.0.1", bridge_port, context=pki.client_context(DEMO_DEVICE), timeout=5
        )
        conn.request("GET", "/dcap")
        resp = conn.getresponse()
        assert resp.status == 200 and b"DeviceCapability" in resp.read()
        conn.close()
        probe.wait_for("bess/demo/der1/status", lambda m: m.payload == b"online", 5)

        assert _cmd(site, "start")["ok"] is True
        probe.wait_for("bess/demo/controller/state", lambda m: m.json()["state"] == "holding", 20)
        reply = _cmd(site, "charge", "20000")
        assert reply["ok"] is True and reply["state"] == "charging"
        assert reply["setpoint"]["applied_w"] == 20000
        # The simulated inverter follows: 701 W goes negative (charging) towards -20 kW.
        probe.wait_for("bess/demo/inverter/701/W", lambda m: (m.json() or 0) < -15000, 15)
        # The history keeps one value per point per second (the last of that second): keep
        # charging across two whole seconds so the recorded day has it, however busy.
        time.sleep(2.2)
        # the live page is part of the demo (loopback, no login): its stream shows the site
        view_port = int(re.findall(r"port = (\d+)", site.read_text().split("[view]")[1])[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{view_port}/api/stream", timeout=5) as r:
            snap = json.loads(r.readline()[6:])
        assert snap["site"] == "demo" and snap["devices"]["battery"]["status"] == "online"
        assert _cmd(site, "stop")["ok"] is True
        probe.wait_for("bess/demo/controller/state", lambda m: m.json()["state"] == "stopped", 20)
        probe.wait_for("bess/demo/inverter/701/W", lambda m: m.json() == 0, 15)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        probe.close()
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    # ... and so is the recorder: the history next to the site file has the charge in it
    store = HistoryStore(site.parent / "history.sqlite")
    try:
        assert min(v for _, v in store.buckets("inverter/701/W", 0, 2e9, 1)) < -15000
    finally:
        store.close()
