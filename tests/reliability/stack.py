"""The whole site as separate processes, so each can be SIGKILLed or SIGSTOPped on its own.

`Stack` runs a Mosquitto broker (edge.mosquitto.MosquittoProcess), then `bess-edge sim`,
one `bess-edge adapter` per device and `bess-edge controller`, each from its own site file
written to a temporary folder. It observes the site the way an operator would: a Probe
subscribed to `bess/{site}/#` (every message time-stamped on arrival), MQTT 5 requests for
commands, and direct Modbus reads of the simulated inverter (pysunspec2) that do not depend on
the broker. Every wait has a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.mosquitto import MosquittoProcess, free_port
from tests.mqtt_probe import Probe

SITE = "rel"
ROOT = f"bess/{SITE}"
BESS_EDGE = str(Path(sys.executable).with_name("bess-edge"))

# Small timers so that every fault plays out in seconds (see docs/reliability.md).
KEEPALIVE_S = 1  # the broker fires a will 1.5 s after a process goes silent
LEASE_S = 3  # inverter revert timer (704 WSetRvrtTms) written by the controller
CONTROLLER = {
    "profile": "sunspec_704",
    "lease_s": LEASE_S,
    "refresh_s": 1.0,
    "write_timeout_s": 1.0,
    "connect_timeout_s": 5.0,
    "restart_settle_s": 0.5,
    "state_publish_s": 1.0,
    "tick_s": 0.05,
    "soc_monitor_max_time": 6.0,  # > 2 x the adapters' refresh_s, or a quiet SoC looks stale
}
ADAPTER = {"poll_s": 0.2, "refresh_s": 2.0}


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def toml_table(header: str, values: dict[str, Any]) -> str:
    lines = [header]
    lines += [f"{k} = {toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Proc:
    """One `bess-edge` service process."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        assert self.popen is not None
        self.popen.send_signal(sig)

    def kill(self, timeout: float = 5.0) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGCONT)
            self.popen.kill()
        self.popen.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (the services' orderly shutdown), SIGKILL if that takes too long."""
        if not self.alive():
            return
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGCONT)
            self.popen.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


class InverterReader:
    """Reads the simulated inverter over Modbus with pysunspec2, independent of the broker."""

    def __init__(self, port: int, timeout: float = 0.5) -> None:
        from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

        self.port = port
        self.timeout = timeout
        self._cls = SunSpecModbusClientDeviceTCP
        self._dev: Any = None

    def _device(self) -> Any:
        if self._dev is None:
            d = self._cls(ipaddr="127.0.0.1", ipport=self.port, timeout=self.timeout)
            d.connect()
            d.scan()
            self._dev = d
        return self._dev

    def read(self) -> dict[str, float | None]:
        """701 W (measured power, W) and 704 WSetEna/WSet; raises OSError-like on no answer."""
        try:
            d = self._device()
            m701 = d.models[701][0]
            m704 = d.models[704][0]
            m701.read()
            m704.read()
            return {
                "W": m701.W.cvalue,
                "WSetEna": m704.WSetEna.cvalue,
                "WSet": m704.WSet.cvalue,
            }
        except Exception as exc:
            self.close()
            raise ConnectionError(f"inverter modbus read failed: {exc}") from exc

    def power_w(self) -> float | None:
        return self.read()["W"]

    def close(self) -> None:
        if self._dev is not None:
            with contextlib.suppress(Exception):
                self._dev.close()
            self._dev = None


class Requester:
    """An operator's MQTT 5 requester with a fixed client id and, optionally, a persistent
    session, so replies and subscriptions survive a broker restart. Thread-safe `send`."""

    def __init__(
        self, host: str, port: int, client_id: str | None = None, session_expiry_s: int = 0
    ) -> None:
        self.client_id = client_id or f"op-{uuid.uuid4().hex[:8]}"
        self.base = f"{ROOT}/reply/{self.client_id}"
        self.replies: dict[str, tuple[float, dict[str, Any]]] = {}
        self.sent: dict[str, float] = {}
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.connects = 0
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        c.max_queued_messages_set(0)  # unlimited: requests made while the broker is away wait
        c.on_socket_open = lambda _c, _u, sock: sock.setsockopt(  # type: ignore[attr-defined]
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )  # Nagle costs ~40 ms per request (field notes)
        c.on_message = self._on_message

        def on_connect(client: paho.Client, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
            if rc.is_failure:
                return
            client.subscribe(f"{self.base}/#", 1)
            self.connects += 1
            self._connected.set()

        c.on_connect = on_connect
        c.on_disconnect = lambda *_a: self._connected.clear()
        c.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        props = None
        if session_expiry_s:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = session_expiry_s
        c.connect(host, port, keepalive=5, clean_start=not session_expiry_s, properties=props)
        c.loop_start()
        if not self._connected.wait(5):
            raise TimeoutError("requester could not connect")
        time.sleep(0.05)
        self.client = c

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        corr = getattr(msg.properties, "CorrelationData", b"") or b""
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = {"ok": False, "error": {"code": "invalid_reply"}}
        with self._lock:
            self.replies.setdefault(corr.decode(), (time.monotonic(), body))

    def send(self, command: str, body: dict[str, Any] | None = None) -> str:
        """Publish one QoS 1 request (queued by paho while the broker is away)."""
        corr = uuid.uuid4().hex
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"{self.base}/{corr}"
        props.CorrelationData = corr.encode()
        props.MessageExpiryInterval = 10
        with self._lock:
            self.sent[corr] = time.monotonic()
        self.client.publish(
            f"{ROOT}/controller/cmd/{command}", json.dumps(body or {}), qos=1, properties=props
        )
        return corr

    def wait_reply(self, corr: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                got = self.replies.get(corr)
            if got is not None:
                return got[1]
            time.sleep(0.005)
        raise TimeoutError(f"no reply to request {corr} within {timeout}s")

    def request(
        self, command: str, body: dict[str, Any] | None = None, timeout: float = 5.0
    ) -> dict[str, Any]:
        return self.wait_reply(self.send(command, body), timeout)

    def unanswered(self) -> list[str]:
        with self._lock:
            return [c for c in self.sent if c not in self.replies]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Observer:
    """A subscriber with a persistent session (SCADA-like): QoS 1 messages published while it
    or the broker was away are delivered after its reconnect. Collects (arrival time, topic,
    payload)."""

    def __init__(self, host: str, port: int, topic_filter: str, client_id: str) -> None:
        self.messages: list[tuple[float, str, bytes]] = []
        self._lock = threading.Lock()
        connected = threading.Event()
        c = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )

        def on_message(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
            with self._lock:
                self.messages.append((time.monotonic(), msg.topic, bytes(msg.payload)))

        def on_connect(client: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            if not rc.is_failure:
                client.subscribe(topic_filter, 1)
                connected.set()

        c.on_message = on_message
        c.on_connect = on_connect
        c.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 60
        c.connect(host, port, keepalive=5, clean_start=True, properties=props)
        c.loop_start()
        if not connected.wait(5):
            raise TimeoutError("observer could not connect")
        time.sleep(0.05)
        self.client = c

    def payloads(self, since: float = 0.0) -> list[bytes]:
        with self._lock:
            return [p for t, _topic, p in self.messages if t >= since]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Stack:
    """`with Stack(tmp_path) as s:` -- broker, sim, adapters and controller as processes."""

    workdir: Path
    controller: dict[str, Any] = field(default_factory=dict)
    adapter: dict[str, Any] = field(default_factory=dict)
    time_scale: float = 1.0
    procs: dict[str, Proc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.broker = MosquittoProcess(workdir=self.workdir / "mosquitto")
        self.ports = {"battery": free_port(), "inverter": free_port()}
        self.controller_cfg = {**CONTROLLER, **self.controller}
        self.adapter_cfg = {**ADAPTER, **self.adapter}
        self.probe: Probe | None = None
        self.op: Requester | None = None
        self.inverter: InverterReader | None = None

    # -- site files ---------------------------------------------------------------------
    def _head(self) -> str:
        return toml_table("[site]", {"id": SITE}) + toml_table(
            "[broker]",
            {"host": self.broker.host, "port": self.broker.port, "keepalive": KEEPALIVE_S},
        )

    def write_files(self) -> dict[str, Path]:
        files: dict[str, Path] = {}
        sim = self._head() + toml_table(
            "[simulator]", {"time_scale": self.time_scale, "step_s": 0.05}
        )
        sim += toml_table(
            "[[simulator.devices]]",
            {
                "name": "battery",
                "kind": "battery",
                "port": self.ports["battery"],
                "connect_delay_s": 0.2,
            },
        )
        sim += toml_table(
            "[[simulator.devices]]",
            {
                "name": "inverter",
                "kind": "inverter",
                "profile": "sunspec",
                "port": self.ports["inverter"],
                "battery": "battery",
            },
        )
        files["sim"] = self.workdir / "sim.toml"
        files["sim"].write_text(sim)
        for dev in ("battery", "inverter"):
            text = self._head() + toml_table(
                "[[devices]]",
                {"name": dev, "kind": "sunspec", "port": self.ports[dev], **self.adapter_cfg},
            )
            files[f"adapter-{dev}"] = self.workdir / f"adapter-{dev}.toml"
            files[f"adapter-{dev}"].write_text(text)
        files["controller"] = self.workdir / "controller.toml"
        files["controller"].write_text(
            self._head() + toml_table("[controller]", self.controller_cfg)
        )
        return files

    # -- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def _start_sim(self, timeout: float, attempts: int = 3) -> None:
        """Start the simulator on the chosen ports. Another test may grab a "free" port before
        the simulator binds it, so success is the simulator's own announcement of each port
        (not merely an open port); on a bind failure, new ports are picked."""
        for attempt in range(attempts):
            files = self.write_files()
            for name, path in files.items():
                service = name.split("-")[0]
                self.procs[name] = Proc(
                    name, [BESS_EDGE, service, "-c", str(path)], self.workdir / f"{name}.log"
                )
            sim = self.procs["sim"]
            sim.start()
            want = [f"sim {d}: modbus tcp 127.0.0.1:{p}" for d, p in self.ports.items()]
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and sim.alive():
                if all(w in sim.tail(20000) for w in want):
                    return
                time.sleep(0.05)
            sim.kill()
            if attempt + 1 < attempts:
                self.ports = {d: free_port() for d in self.ports}
        raise RuntimeError(f"the simulator did not start:\n{self.procs['sim'].tail()}")

    def start(self, timeout: float = 30.0) -> None:
        self.broker.start()
        self.probe = Probe(self.broker.host, self.broker.port, f"{ROOT}/#")
        self._start_sim(timeout)
        for name in ("adapter-battery", "adapter-inverter", "controller"):
            self.procs[name].start()
        self.op = Requester(self.broker.host, self.broker.port)
        self.inverter = InverterReader(self.ports["inverter"])
        try:
            self.wait_ready(timeout)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.logs()}") from None

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Every device online, the controller online and its state carrying a SoC."""
        for dev in ("battery", "inverter", "controller"):
            self.wait_status(dev, "online", timeout)
        self.wait(
            lambda: (self.state() or {}).get("soc") is not None, timeout, "controller sees SoC"
        )

    def close(self) -> None:
        for p in reversed(list(self.procs.values())):
            with contextlib.suppress(Exception):
                p.stop()
        for closer in (self.op, self.probe, self.inverter):
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer.close()
        self.broker.cleanup()

    def restart_proc(self, name: str) -> None:
        """Start a (killed) service process again from the same site file."""
        p = self.procs[name]
        if p.alive():
            p.kill()
        p.start()

    # -- observing ----------------------------------------------------------------------
    def wait(self, pred: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        last_exc: Exception | None = None
        while True:
            try:
                got = pred()
                if got:
                    return got
            except Exception as exc:  # e.g. a Modbus read while the device is down
                last_exc = exc
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"timed out after {timeout}s waiting for {what}"
                    f" (last error: {last_exc}); state: {self.state()}"
                )
            time.sleep(0.02)

    def state(self) -> dict[str, Any] | None:
        assert self.probe is not None
        m = self.probe.latest(f"{ROOT}/controller/state")
        return None if m is None else m.json()

    def status(self, device: str) -> str | None:
        assert self.probe is not None
        m = self.probe.latest(f"{ROOT}/{device}/status")
        return None if m is None else m.payload.decode()

    def wait_status(self, device: str, value: str, timeout: float = 10.0) -> float:
        """Wait until `{root}/{device}/status` reads `value`; returns the arrival time."""
        assert self.probe is not None
        topic = f"{ROOT}/{device}/status"
        self.wait(lambda: self.status(device) == value, timeout, f"{device} {value}")
        m = self.probe.latest(topic)
        assert m is not None
        return m.at

    def first_after(
        self, topic: str, since: float, pred: Callable[[Any], bool] = lambda _m: True
    ) -> Any:
        """The first message on `topic` that arrived after `since` (monotonic) and matches."""
        assert self.probe is not None
        for m in self.probe.snapshot():
            if m.at >= since and paho.topic_matches_sub(topic, m.topic) and pred(m):
                return m
        return None

    def wait_state(self, state: str, timeout: float = 10.0) -> dict[str, Any]:
        got: dict[str, Any] = self.wait(
            lambda: (s := self.state()) is not None and s["state"] == state and s,
            timeout,
            f"controller state {state}",
        )
        return got

    def cmd(self, command: str, body: dict[str, Any] | None = None, timeout: float = 6.0) -> Any:
        assert self.op is not None
        return self.op.request(command, body, timeout)

    def inject(self, device: str, action: str, body: dict[str, Any] | None = None) -> Any:
        assert self.probe is not None
        return self.probe.request(f"{ROOT}/sim/{device}/cmd/{action}", body or {}, timeout=5)

    def inverter_w(self) -> float | None:
        assert self.inverter is not None
        return self.inverter.power_w()

    def wait_power(self, pred: Callable[[float], bool], timeout: float, what: str) -> float:
        """Wait until the inverter's measured power (701 W, over Modbus) satisfies `pred`."""
        self.wait(
            lambda: (w := self.inverter_w()) is not None and pred(w), timeout, f"inverter {what}"
        )
        return time.monotonic()

    def rss(self) -> dict[str, int]:
        return {n: rss_kib(p.pid) for n, p in self.procs.items() if p.alive()}

    def energise(self, command: str = "charge", power_w: float = 20000) -> None:
        """stopped/fault -> start -> holding -> charge|discharge at `power_w`, confirmed at the
        inverter."""
        # Ask the controller: the retained state topic can lag a transition by a publish
        # (see the note in edge/controller/shell.py, _on_connect).
        st = self.cmd("get_state").get("state")
        if st == "fault":
            r = self.cmd("reset")
            assert r["ok"], r
        r = self.cmd("start")
        assert r["ok"], r
        self.wait_state("holding", 10)
        r = self.cmd(command, {"power_w": power_w})
        assert r["ok"] and r["state"] == ("charging" if command == "charge" else "discharging"), r
        sign = -1 if command == "charge" else 1
        self.wait_power(lambda w: w == sign * power_w, 10, f"at {sign * power_w} W")

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{p.tail()}" for n, p in self.procs.items())


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false")
