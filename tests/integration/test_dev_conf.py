"""mosquitto/dev.conf: the same broker as edge.mosquitto.dev_config(), and it keeps retained
state across a SIGKILL (field notes, section 4)."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from edge.mosquitto import MosquittoProcess, dev_config, find_mosquitto, free_port
from tests.mqtt_probe import Probe

DEV_CONF = Path(__file__).resolve().parents[2] / "mosquitto" / "dev.conf"
# Lines that legitimately differ: the port and folder, and `user root` (dev_config writes it only
# when run as root; in dev.conf it is a no-op for non-root users).
VARYING = re.compile(r"^(listener|persistence_location|user) ")


def directives(text: str) -> set[str]:
    lines = {" ".join(ln.split()) for ln in text.splitlines()}
    return {ln for ln in lines if ln and not ln.startswith("#") and not VARYING.match(ln)}


def test_dev_conf_and_dev_config_describe_the_same_broker(tmp_path: Path) -> None:
    text = DEV_CONF.read_text()
    assert directives(text) == directives(dev_config(1883, tmp_path))
    assert "listener 1883 127.0.0.1" in text
    assert "persistence_location run/mosquitto/data/" in text
    assert "user root" in text


@pytest.mark.broker
@pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto not installed")
def test_dev_conf_keeps_retained_state_across_sigkill(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "data"
    text = DEV_CONF.read_text()
    text = text.replace("listener 1883 ", f"listener {port} ")
    text = text.replace("persistence_location run/mosquitto/data/", f"persistence_location {data}/")
    broker = MosquittoProcess(port=port, workdir=tmp_path, config_text=text)
    broker.start()
    try:
        p = Probe("127.0.0.1", port, "none")
        p.publish("bess/dev/controller/state", '{"state": "holding"}', qos=1, retain=True)
        p.close()
        acked = time.time()
        # autosave_interval 1 (whole seconds, checked by the main loop): saved within ~2-3 s.
        db = data / "mosquitto.db"
        deadline = time.monotonic() + 5
        while not (db.exists() and db.stat().st_mtime > acked):
            assert time.monotonic() < deadline, "no autosave within 5 s"
            time.sleep(0.05)
        broker.restart(signal.SIGKILL)
        p = Probe("127.0.0.1", port, "bess/#")
        try:
            m = p.wait_for("bess/dev/controller/state", timeout=3)
            assert m.retain and m.payload == b'{"state": "holding"}'
        finally:
            p.close()
    finally:
        broker.cleanup()
