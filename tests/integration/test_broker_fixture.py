"""The broker fixture starts, keeps retained state across TERM and KILL restarts, and stops."""

from __future__ import annotations

import signal
import time

import pytest

from edge.mosquitto import port_open
from tests.broker import Broker
from tests.mqtt_probe import Probe


def _publish_retained(broker: Broker, topic: str, payload: str) -> None:
    p = Probe(broker.host, broker.port, "none/#")
    p.publish(topic, payload, qos=1, retain=True)
    p.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["TERM", "KILL"])
def test_restart_on_same_port_keeps_retained(broker: Broker, sig: int) -> None:
    port = broker.port
    before = time.time() - 0.01
    _publish_retained(broker, "bess/t/x/status", "online")
    broker.wait_saved(after=before)  # after the autosave, even a KILL does not lose it
    broker.stop(sig)
    assert not port_open(broker.host, port)
    broker.start()
    assert broker.port == port
    p = Probe(broker.host, broker.port, "bess/#")
    m = p.wait_for("bess/t/x/status", timeout=3)
    assert m.payload == b"online" and m.retain
    p.close()


def test_stop_frees_the_port(broker: Broker) -> None:
    assert port_open(broker.host, broker.port)
    broker.stop()
    assert not port_open(broker.host, broker.port)
