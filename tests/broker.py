"""A real Mosquitto broker for tests: testcontainers where a Docker engine answers, else Debian's
`mosquitto` binary on a free loopback port. Both offer stop(TERM|KILL) and start on the same port.
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import Protocol

from edge.mosquitto import MosquittoProcess, find_mosquitto


class Broker(Protocol):
    host: str
    port: int

    def start(self) -> None: ...
    def stop(self, sig: int = signal.SIGTERM) -> None: ...
    def restart(self, sig: int = signal.SIGTERM, down_s: float = 0.0) -> None: ...
    def cleanup(self) -> None: ...
    def wait_saved(self, after: float, timeout: float = 5.0) -> None: ...


def docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False


class ContainerBroker:
    """testcontainers' MosquittoContainer, with signal-based stop and restart."""

    def __init__(self) -> None:
        from testcontainers.community.mqtt import MosquittoContainer  # type: ignore[import-untyped]

        self._c = MosquittoContainer()
        self._c.start()
        self.host = self._c.get_container_host_ip()
        self.port = int(self._c.get_exposed_port(MosquittoContainer.MQTT_PORT))

    def start(self) -> None:
        wrapped = self._c.get_wrapped_container()
        wrapped.start()
        wrapped.reload()
        # Docker may map a new host port after a restart; follow it.
        self.port = int(self._c.get_exposed_port(self._c.MQTT_PORT))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        wrapped = self._c.get_wrapped_container()
        wrapped.kill(signal=signal.Signals(sig).name)
        wrapped.wait(timeout=10)

    def restart(self, sig: int = signal.SIGTERM, down_s: float = 0.0) -> None:
        import time

        self.stop(sig)
        time.sleep(down_s)
        self.start()

    def wait_saved(self, after: float, timeout: float = 5.0) -> None:
        import time

        time.sleep(3.0)  # the container's autosave cannot be observed from here

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self._c.stop()


def make_broker(workdir: Path) -> Broker:
    """A running broker. Prefers Docker; falls back to the local binary (the CI path)."""
    if docker_available():
        return ContainerBroker()
    if find_mosquitto() is None:
        raise RuntimeError(
            "no Docker engine and no mosquitto binary: "
            "apt-get install -y mosquitto mosquitto-clients"
        )
    broker = MosquittoProcess(workdir=workdir)
    broker.start()
    return broker
