"""Start Debian's `mosquitto` on loopback: used by `bess-edge demo` and the test fixture.

Started as root, mosquitto drops to the `mosquitto` user and then cannot write a root-owned
persistence folder (field notes, section 4), so the generated config says `user` explicitly and
the folder is created by us.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto")


def find_mosquitto() -> str | None:
    for c in MOSQUITTO_CANDIDATES:
        if os.access(c, os.X_OK):
            return c
    return shutil.which("mosquitto")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def dev_config(port: int, persistence_dir: Path, *, autosave_s: int = 1, extra: str = "") -> str:
    """A loopback, anonymous, persistent broker: the shape of mosquitto/dev.conf."""
    user = "root" if os.geteuid() == 0 else ""
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {persistence_dir}/",
        # Short autosave so retained and queued QoS 1 messages survive a SIGKILL.
        f"autosave_interval {autosave_s}",
        "set_tcp_nodelay true",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    if user:
        lines.insert(0, f"user {user}")
    return "\n".join(lines) + "\n" + extra


class MosquittoProcess:
    """One broker process on a fixed port; stop with TERM or KILL and start again on that port."""

    def __init__(
        self,
        port: int | None = None,
        workdir: Path | None = None,
        config_text: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise FileNotFoundError(
                "mosquitto not found; install it with: "
                "apt-get install -y mosquitto mosquitto-clients"
            )
        self.binary = binary
        self.host = host
        self.port = port or free_port(host)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="bess-mosquitto-")).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.persistence = self.workdir / "data"
        self.persistence.mkdir(exist_ok=True)
        self.config_path = self.workdir / "mosquitto.conf"
        self.config_path.write_text(config_text or dev_config(self.port, self.persistence))
        self.log_path = self.workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.proc.returncode}: "
                    f"{self.log_path.read_text()[-2000:]}"
                )
            if port_open(self.host, self.port):
                return
            time.sleep(0.02)
        self.stop(signal.SIGKILL)
        raise TimeoutError(f"mosquitto did not listen on {self.host}:{self.port} within {timeout}s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        # Wait for the port to be free so a restart on the same port works.
        deadline = time.monotonic() + timeout
        while port_open(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self, sig: int = signal.SIGTERM, down_s: float = 0.0) -> None:
        self.stop(sig)
        if down_s:
            time.sleep(down_s)
        self.start()

    def wait_saved(self, after: float, timeout: float = 5.0) -> None:
        """Wait until the persistence file was written after wall-clock time `after`.

        With `autosave_interval 1` mosquitto saves 1.5-2.5 s after a change; only then does
        state survive a SIGKILL.
        """
        db = self.persistence / "mosquitto.db"
        deadline = time.monotonic() + timeout
        while not (db.exists() and db.stat().st_mtime > after):
            if time.monotonic() > deadline:
                raise TimeoutError(f"mosquitto did not save {db} within {timeout}s")
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.workdir)
