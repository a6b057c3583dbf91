"""Failure handling: frozen and dropped devices, broker restarts (TERM and KILL)."""

from __future__ import annotations

import shutil
import signal
import time
from typing import Any

import pytest

from tests.integration.adapter_harness import SiteRunner

pytestmark = pytest.mark.broker
ROOT = "bess/t"
SIM = [{"name": "battery", "kind": "battery"}]


def status_after(probe: Any, payload: bytes, t0: float, timeout: float) -> float:
    m = probe.wait_for(
        f"{ROOT}/battery/status", lambda m: m.payload == payload and m.at > t0, timeout=timeout
    )
    return float(m.at - t0)


@pytest.mark.parametrize("poll_s", [0.1, 5.0])
def test_frozen_device_goes_offline_within_budget_and_comes_back(
    broker: Any, probe_factory: Any, poll_s: float, caplog: pytest.LogCaptureFixture
) -> None:
    # poll_s 5: no poll is due, so the liveness probe must catch the freeze within budget.
    devices = [{"name": "battery", "kind": "sunspec", "poll_s": poll_s, "reconnect_max_s": 0.5}]
    with SiteRunner(broker, SIM, devices) as site:
        probe = probe_factory(f"{ROOT}/#")
        status_after(probe, b"online", 0, 5)
        time.sleep(0.3)
        t0 = time.monotonic()
        site.inject("battery", "freeze", {"on": True})
        assert status_after(probe, b"offline", t0, 3) <= 1.0  # the default budget
        time.sleep(1.5)  # several failed reconnects while frozen
        t1 = time.monotonic()
        site.inject("battery", "clear")
        assert status_after(probe, b"online", t1, 3) <= 0.5 + 0.5  # capped backoff + a poll
        # After the reconnect everything is refreshed, nameplate included.
        probe.wait_for(f"{ROOT}/battery/1/SN", lambda m: m.at > t1, timeout=2)
    errors = [
        r for r in caplog.records if r.name == "adapters.modbus.device" and r.levelname == "ERROR"
    ]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # repeats are DEBUG


def test_dropped_connections_are_reopened(broker: Any, probe_factory: Any) -> None:
    devices = [{"name": "battery", "kind": "sunspec", "poll_s": 0.1}]
    with SiteRunner(broker, SIM, devices) as site:
        probe = probe_factory(f"{ROOT}/#")
        status_after(probe, b"online", 0, 5)
        assert site.do(site.sim.device("battery").drop) >= 1
        t0 = time.monotonic()
        time.sleep(0.5)
        assert probe.request(f"{ROOT}/battery/set/802/CtrlHb", {"value": 11})["ok"]
        probe.wait_for(f"{ROOT}/battery/ts", lambda m: m.at > t0, timeout=2)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_broker_restart_is_survived_and_state_republished(
    broker: Any, probe_factory: Any, sig: int
) -> None:
    devices = [{"name": "battery", "kind": "sunspec", "poll_s": 0.2}]
    with SiteRunner(broker, SIM, devices, keepalive=2) as site:
        probe = probe_factory(f"{ROOT}/#")
        status_after(probe, b"online", 0, 5)
        probe.wait_for(f"{ROOT}/battery/1/SN")
        probe.close()
        adapter = site.adapters["battery"]
        before = adapter.mqtt.connect_count
        broker.stop(sig)
        # Lose whatever the broker persisted: what a new subscriber gets afterwards must have
        # been republished by the adapter.
        persistence = getattr(broker, "persistence", None)
        if persistence is not None:
            shutil.rmtree(persistence, ignore_errors=True)
            persistence.mkdir()
        time.sleep(0.3)
        broker.start()
        deadline = time.monotonic() + 5
        while adapter.mqtt.connect_count == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert adapter.mqtt.connect_count > before
        late = probe_factory(f"{ROOT}/#")
        assert late.wait_for(f"{ROOT}/battery/status", timeout=3).payload == b"online"
        assert late.wait_for(f"{ROOT}/battery/meta", timeout=3).json()["device"] == "battery"
        sn = late.wait_for(f"{ROOT}/battery/1/SN", timeout=3)  # polled once only: republished
        assert sn.retain and sn.json() == "SIM-battery"
        late.wait_for(f"{ROOT}/battery/802/SoC_SF", timeout=3)
        # Resubscribed: set requests are served again.
        assert late.request(f"{ROOT}/battery/set/802/CtrlHb", {"value": 5})["ok"]


def test_absent_device_is_offline_and_refuses_writes(
    broker: Any, probe_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from edge.mosquitto import free_port

    devices = [{"name": "ghost", "kind": "sunspec", "port": free_port(), "reconnect_max_s": 0.2}]
    with SiteRunner(broker, SIM, devices):
        probe = probe_factory(f"{ROOT}/#")
        probe.wait_for(f"{ROOT}/ghost/status", lambda m: m.payload == b"offline", timeout=3)
        r = probe.request(f"{ROOT}/ghost/set/802/SetOp", {"value": 1})
        assert r["ok"] is False and r["error"]["code"] == "offline"
        time.sleep(1.0)  # several reconnect attempts
    errors = [
        r for r in caplog.records if r.name == "adapters.modbus.device" and r.levelname == "ERROR"
    ]
    assert len(errors) == 1
