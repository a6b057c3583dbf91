"""mosquitto/secure.conf against a real broker: TLS only, passwords, and the roles of topics.md.

The broker runs the config, password file, certificates and ACL that mosquitto/make-secure.sh
generates (into tmp_path, never into the repo); the ACL it generates for the demo site is the
checked-in mosquitto/acl (asserted below), so these tests exercise that file.

A message that must NOT arrive is checked with a barrier, not a sleep: the forbidden publish is
acknowledged first (QoS 1; MQTT 5 PUBACK reason 0x87 "not authorized"), then a permitted marker
is sent; once the marker has arrived, anything routed before it would have arrived too.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edge.mosquitto import MosquittoProcess, find_mosquitto, free_port
from edge.mqtt import BrokerSettings, MqttClient, Requester, Topics, serve
from edge.mqtt.client import TlsSettings
from edge.mqtt.rpc import Request

REPO = Path(__file__).resolve().parents[2]
MAKE_SECURE = REPO / "mosquitto" / "make-secure.sh"
T = Topics("demo")
NOT_AUTHORIZED = 135
BAD_CREDENTIALS = 134
# PUBACK reason codes of an accepted publish: 0 success, 16 "no matching subscribers".
ACCEPTED = (0, 16)
# A valid MQTT 3.1.1 CONNECT: client id "plain", clean session, keepalive 10 s, no credentials.
PLAIN_CONNECT = bytes([0x10, 17]) + b"\x00\x04MQTT\x04\x02\x00\x0a\x00\x05plain"


def _nodelay(sock: Any) -> None:
    """Nagle costs ~40-80 ms per request/response on loopback (field notes)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto not installed"),
]


@dataclass
class SecureBroker:
    port: int
    secrets: Path
    passwords: dict[str, str]
    process: MosquittoProcess

    @property
    def ca(self) -> str:
        return str(self.secrets / "ca.crt")


def make_secure(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(MAKE_SECURE), *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    base = tmp_path_factory.mktemp("secure")
    port = free_port()
    secrets = base / "secrets"
    # -u: the broker keeps the current user, who owns the generated secrets.
    done = make_secure(
        "-o", str(secrets), "-p", str(port), "-b", "127.0.0.1", "-u", getpass.getuser()
    )
    assert done.returncode == 0, done.stderr
    passwords = dict(
        line.split(" ", 1) for line in (secrets / "passwords").read_text().splitlines() if line
    )
    proc = MosquittoProcess(
        port=port, workdir=base / "broker", config_text=(secrets / "mosquitto.conf").read_text()
    )
    proc.start()
    try:
        yield SecureBroker(port, secrets, passwords, proc)
    finally:
        proc.cleanup()


class Client:
    """A paho MQTT 5 client over TLS that records CONNACK, SUBACK and PUBACK reason codes."""

    def __init__(
        self,
        broker: SecureBroker,
        user: str | None,
        password: str | None = None,
        *filters: str,
        client_id: str | None = None,
        connect: bool = True,
        cert: str | None = None,
    ) -> None:
        self.client_id = client_id or f"{user or 'anon'}-{uuid.uuid4().hex[:6]}"
        self.messages: list[paho.MQTTMessage] = []
        self.pubacks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self.connack: int | None = None
        self._lock = threading.Lock()
        self._connack = threading.Event()
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        c.tls_set(
            ca_certs=broker.ca,
            certfile=str(broker.secrets / f"{cert}.crt") if cert else None,
            keyfile=str(broker.secrets / f"{cert}.key") if cert else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        if user is not None:
            pw = password if password is not None else broker.passwords[user]
            c.username_pw_set(user, pw)
        c.on_socket_open = lambda _c, _u, sock: _nodelay(sock)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        c.on_subscribe = self._on_subscribe
        self.client = c
        if connect:
            c.connect("127.0.0.1", broker.port, keepalive=10)
            c.loop_start()
            if not self._connack.wait(5):
                raise TimeoutError("no CONNACK within 5 s")
            for f in filters:
                self.subscribe(f)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.connack = int(rc.value)
        self._connack.set()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(msg)

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        with self._lock:
            self.pubacks[mid] = int(rc.value)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, rcs: list[Any], _p: Any) -> None:
        with self._lock:
            self.subacks[mid] = [int(r.value) for r in rcs]

    def _wait(self, table: dict[int, Any], mid: int, what: str, timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if mid in table:
                    return table[mid]
            time.sleep(0.005)
        raise TimeoutError(f"{self.client_id}: no {what} for mid {mid} within {timeout}s")

    def subscribe(self, topic_filter: str) -> list[int]:
        _rc, mid = self.client.subscribe(topic_filter, 1)
        assert mid is not None
        codes: list[int] = self._wait(self.subacks, mid, "SUBACK")
        return codes

    def publish(self, topic: str, payload: str = "x", retain: bool = False) -> int:
        """Publish at QoS 1; return the PUBACK reason code (ACCEPTED or NOT_AUTHORIZED)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        code: int = self._wait(self.pubacks, info.mid, "PUBACK")
        return code

    def topics(self) -> list[str]:
        with self._lock:
            return [m.topic for m in self.messages]

    def wait_for(
        self, topic: str, payload: bytes | None = None, timeout: float = 5.0
    ) -> paho.MQTTMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for m in self.messages:
                    if m.topic == topic and payload in (None, m.payload):
                        return m
            time.sleep(0.005)
        raise TimeoutError(f"{self.client_id}: nothing on {topic}; got {self.topics()}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def marker(broker: SecureBroker, *receivers: Client, topic: str = T.controller_events) -> None:
    """Barrier: the controller publishes a fresh payload and every receiver must get it."""
    payload = uuid.uuid4().hex
    ctl = Client(broker, "controller")
    try:
        assert ctl.publish(topic, payload) in ACCEPTED
    finally:
        ctl.close()
    for r in receivers:
        r.wait_for(topic, payload.encode())


def connack_of(broker: SecureBroker, user: str | None, password: str | None) -> int:
    c = Client(broker, user, password)
    try:
        assert c.connack is not None
        return c.connack
    finally:
        c.close()


# -- the files -------------------------------------------------------------------------------
def test_checked_in_acl_is_the_generated_demo_acl() -> None:
    done = make_secure("-a")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (REPO / "mosquitto" / "acl").read_text(), (
        "mosquitto/acl is stale: regenerate with mosquitto/make-secure.sh -a > mosquitto/acl"
    )


def test_generated_config_mirrors_secure_conf(secure_broker: SecureBroker) -> None:
    def directives(text: str) -> set[str]:
        return {ln.split()[0] for ln in text.splitlines() if ln.strip() and ln[0] != "#"}

    generated = (secure_broker.secrets / "mosquitto.conf").read_text()
    checked_in = (REPO / "mosquitto" / "secure.conf").read_text()
    assert directives(checked_in) <= directives(generated)
    assert "allow_anonymous false" in generated
    assert f"listener {secure_broker.port} 127.0.0.1" in generated
    assert f"acl_file {secure_broker.secrets}/acl" in generated


@pytest.mark.parametrize(
    "args, field",
    [
        (["-s", "Bad Site"], "site"),
        (["-o", "/nonexistent/x", "reply"], "reserved"),
        (["-o", "/nonexistent/x", "-g", "der1", "battery"], "bridge device"),
        (["-p", "88x"], "port"),
    ],
)
def test_script_refuses_bad_names(args: list[str], field: str) -> None:
    done = make_secure(*args)
    assert done.returncode != 0
    assert field in done.stderr


# -- authentication and transport ---------------------------------------------------------
def test_anonymous_is_refused(secure_broker: SecureBroker) -> None:
    assert connack_of(secure_broker, None, None) in (NOT_AUTHORIZED, BAD_CREDENTIALS)


def test_wrong_password_is_refused(secure_broker: SecureBroker) -> None:
    assert connack_of(secure_broker, "operator", "not-the-password") in (
        NOT_AUTHORIZED,
        BAD_CREDENTIALS,
    )
    assert connack_of(secure_broker, "nobody", "x") in (NOT_AUTHORIZED, BAD_CREDENTIALS)
    assert connack_of(secure_broker, "operator", None) == 0


def test_plain_tcp_is_refused_on_the_tls_port(secure_broker: SecureBroker) -> None:
    with socket.create_connection(("127.0.0.1", secure_broker.port), timeout=3) as s:
        s.sendall(PLAIN_CONNECT)
        try:
            reply = s.recv(16)
        except (ConnectionResetError, TimeoutError):
            reply = b""
    assert not reply.startswith(b"\x20"), f"the TLS port answered a clear-text CONNECT: {reply!r}"


def test_a_server_certificate_from_another_ca_is_rejected(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    done = make_secure("-o", str(other), "-p", "1")
    assert done.returncode == 0, done.stderr
    c = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    c.tls_set(ca_certs=str(other / "ca.crt"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    c.username_pw_set("scada", secure_broker.passwords["scada"])
    with pytest.raises(ssl.SSLError):
        c.connect("127.0.0.1", secure_broker.port, keepalive=5)


def test_client_certificates_when_required(secure_broker: SecureBroker, tmp_path: Path) -> None:
    """With `require_certificate true`, the password alone is not enough: the role's
    certificate from make-secure.sh is needed too."""
    port = free_port()
    text = (secure_broker.secrets / "mosquitto.conf").read_text()
    text = text.replace(f"listener {secure_broker.port} ", f"listener {port} ")
    assert "require_certificate false" in text
    text = text.replace("require_certificate false", "require_certificate true")
    proc = MosquittoProcess(port=port, workdir=tmp_path / "mtls", config_text=text)
    proc.start()
    try:
        b = SecureBroker(port, secure_broker.secrets, secure_broker.passwords, proc)
        with_cert = Client(b, "scada", None, T.all, cert="client-scada")
        with_cert.close()
        assert with_cert.connack == 0
        # Without one, the TLS session never carries MQTT: no CONNACK comes back.
        ctx = ssl.create_default_context(cafile=b.ca)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=3) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            try:
                tls.sendall(PLAIN_CONNECT)
                reply = tls.recv(16)
            except (ssl.SSLError, ConnectionResetError, TimeoutError):
                reply = b""
        assert not reply.startswith(b"\x20"), f"CONNACK without a client certificate: {reply!r}"
    finally:
        proc.cleanup()


# -- roles -----------------------------------------------------------------------------------
def test_scada_reads_everything_but_cannot_command(secure_broker: SecureBroker) -> None:
    b = secure_broker
    scada = Client(b, "scada", None, T.all)
    ctl = Client(b, "controller", None, T.all)
    adapter = Client(b, "adapter-battery", None, T.set_filter("battery"))
    try:
        # It reads device points and controller state.
        assert adapter.publish(T.point("battery", 802, "SoC"), "55.0") in ACCEPTED
        assert ctl.publish(T.controller_state, '{"state": "stopped"}', retain=True) in ACCEPTED
        scada.wait_for(T.point("battery", 802, "SoC"))
        scada.wait_for(T.controller_state)
        # Its commands are refused by the broker and never reach the controller or the adapter.
        assert scada.publish(T.controller_cmd("stop"), "{}") == NOT_AUTHORIZED
        assert scada.publish(T.set("battery", 802, "SetOp"), '{"value": 1}') == NOT_AUTHORIZED
        assert scada.publish(T.controller_state, '{"state": "fake"}') == NOT_AUTHORIZED
        marker(b, ctl)
        marker(b, adapter, topic=T.set("battery", 1, "marker"))
        assert T.controller_cmd("stop") not in ctl.topics()
        assert T.set("battery", 802, "SetOp") not in ctl.topics()
        assert T.set("battery", 802, "SetOp") not in adapter.topics()
        assert all(m.payload != b'{"state": "fake"}' for m in ctl.messages)
    finally:
        for c in (scada, ctl, adapter):
            c.close()


def test_adapter_publishes_only_its_own_device(secure_broker: SecureBroker) -> None:
    b = secure_broker
    ctl = Client(b, "controller", None, T.all)
    adapter = Client(b, "adapter-battery")
    try:
        assert adapter.publish(T.point("battery", 802, "W"), "100.0") in ACCEPTED
        assert adapter.publish(T.status("battery"), "online", retain=True) in ACCEPTED
        assert adapter.publish(T.meta("battery"), "{}", retain=True) in ACCEPTED
        assert adapter.publish(T.point("inverter", 701, "W"), "1.0") == NOT_AUTHORIZED
        assert adapter.publish(T.status("inverter"), "offline") == NOT_AUTHORIZED
        assert adapter.publish(T.controller_state, '{"state": "fake"}') == NOT_AUTHORIZED
        assert adapter.publish(T.controller_cmd("start"), "{}") == NOT_AUTHORIZED
        marker(b, ctl)
        got = ctl.topics()
        assert T.point("battery", 802, "W") in got and T.status("battery") in got
        assert T.point("inverter", 701, "W") not in got
        assert T.status("inverter") not in got
        assert T.controller_cmd("start") not in got
        assert all(m.payload != b'{"state": "fake"}' for m in ctl.messages)
    finally:
        ctl.close()
        adapter.close()


def test_adapter_receives_only_its_own_set_requests(secure_broker: SecureBroker) -> None:
    b = secure_broker
    # It may even subscribe to everything: the broker delivers only what it may read.
    adapter = Client(b, "adapter-battery", None, T.all)
    ctl = Client(b, "controller")
    try:
        assert ctl.publish(T.controller_state, '{"state": "holding"}') in ACCEPTED
        assert ctl.publish(T.set("inverter", 704, "WSet"), '{"value": 5}') in ACCEPTED
        assert ctl.publish(T.set("battery", 802, "SetOp"), '{"value": 1}') in ACCEPTED
        adapter.wait_for(T.set("battery", 802, "SetOp"))
        # Same publisher, same subscriber, in order: the battery request arrived, so the state
        # and the inverter request (sent before it) would have arrived first.
        assert adapter.topics() == [T.set("battery", 802, "SetOp")]
    finally:
        adapter.close()
        ctl.close()


def test_operator_commands_the_controller_and_devices(secure_broker: SecureBroker) -> None:
    b = secure_broker
    ctl = Client(b, "controller", None, T.controller_cmd_filter)
    adapter = Client(b, "adapter-battery", None, T.set_filter("battery"))
    op = Client(b, "operator")
    try:
        assert op.publish(T.controller_cmd("start"), "{}") in ACCEPTED
        assert op.publish(T.set("battery", 802, "AlmRst"), '{"value": 1}') in ACCEPTED
        assert op.publish(T.sim_cmd("battery", "clear"), "{}") in ACCEPTED
        assert op.publish(T.controller_state, '{"state": "fake"}') == NOT_AUTHORIZED
        assert op.publish(T.point("battery", 802, "SoC"), "1") == NOT_AUTHORIZED
        ctl.wait_for(T.controller_cmd("start"))
        adapter.wait_for(T.set("battery", 802, "AlmRst"))
    finally:
        for c in (ctl, adapter, op):
            c.close()


def test_controller_publishes_set_requests_and_state(secure_broker: SecureBroker) -> None:
    b = secure_broker
    scada = Client(b, "scada", None, T.all)
    inverter = Client(b, "adapter-inverter", None, T.set_filter("inverter"))
    ctl = Client(b, "controller")
    try:
        assert ctl.publish(T.set("inverter", 704, "WSet"), '{"value": 3000}') in ACCEPTED
        assert ctl.publish(T.controller_state, '{"state": "charging"}', retain=True) in ACCEPTED
        assert ctl.publish(T.controller_status, "online", retain=True) in ACCEPTED
        assert ctl.publish(T.point("battery", 802, "SoC"), "99") == NOT_AUTHORIZED
        inverter.wait_for(T.set("inverter", 704, "WSet"))
        scada.wait_for(T.controller_state, b'{"state": "charging"}')
        marker(b, scada)
        assert all(m.payload != b"99" for m in scada.messages)
    finally:
        for c in (scada, inverter, ctl):
            c.close()


def test_sim_role_is_confined_to_the_simulator(secure_broker: SecureBroker) -> None:
    b = secure_broker
    sim = Client(b, "sim", None, T.all)
    ctl = Client(b, "controller", None, T.all)
    try:
        assert sim.publish(T.sim_status, "online", retain=True) in ACCEPTED
        assert sim.publish(T.controller_cmd("stop"), "{}") == NOT_AUTHORIZED
        assert sim.publish(T.set("battery", 802, "SetOp"), '{"value": 1}') == NOT_AUTHORIZED
        ctl.wait_for(T.sim_status)
        assert ctl.publish(T.controller_state, '{"state": "holding"}') in ACCEPTED
        marker(b, ctl)
        assert T.controller_cmd("stop") not in ctl.topics()
        assert T.controller_state not in sim.topics()  # it reads only sim/#
    finally:
        sim.close()
        ctl.close()


# Every role of the generated ACL but the operator (the adapters of the demo devices included).
NOT_OPERATORS = ("controller", "bridge", "scada", "sim", "sparkplug", "sparkplug-host",
                 "ha-discovery", "homeassistant", "adapter-battery", "adapter-inverter",
                 "adapter-meter")  # fmt: skip


def test_only_operators_send_bridge_admin_requests(secure_broker: SecureBroker) -> None:
    b = secure_broker
    assert set(NOT_OPERATORS) | {"operator"} == set(b.passwords)  # a new role is checked too
    bridge = Client(b, "bridge", None, T.bridge_admin_filter, T.controller_events)
    try:
        for user in NOT_OPERATORS:
            c = Client(b, user)
            try:
                assert c.publish(T.bridge_admin(f"edev-{user}"), "{}") == NOT_AUTHORIZED, user
                assert c.publish(f"{T.root}/bridge/admin/x/y", "{}") == NOT_AUTHORIZED, user
            finally:
                c.close()
        op = Client(b, "operator")
        try:
            assert op.publish(T.bridge_admin("stats"), "{}") in ACCEPTED
        finally:
            op.close()
        bridge.wait_for(T.bridge_admin("stats"))  # the bridge reads what operators send
        marker(b, bridge)
        assert [t for t in bridge.topics() if "/bridge/admin/" in t] == [T.bridge_admin("stats")]
    finally:
        bridge.close()


# -- request/response through the project's own MQTT shell, over TLS with passwords -------------
def test_replies_reach_only_the_requesters_own_branch(secure_broker: SecureBroker) -> None:
    b = secure_broker
    tls = TlsSettings(ca_file=b.ca)

    def settings(user: str) -> BrokerSettings:
        return BrokerSettings(
            host="127.0.0.1", port=b.port, username=user, password=b.passwords[user], tls=tls
        )

    async def main() -> None:
        responder = MqttClient(settings("adapter-battery"), "adapter-battery-1")

        async def handle(req: Request) -> dict[str, Any]:
            return {"value": req.body.get("value"), "raw": 1}

        serve(responder, T.set_filter("battery"), handle)
        await responder.start()
        op_client = MqttClient(settings("operator"), "op-7")
        requester = Requester(op_client, T)
        await op_client.start()
        # Eavesdroppers: scada, and the same operator account under another client id, both
        # subscribed to op-7's reply branch. The ACL grants a branch to its client id only.
        branch = f"{T.reply_base('op-7')}/#"
        spies = [
            Client(b, "scada", None, branch, T.controller_events, client_id="scada-spy"),
            Client(b, "operator", None, branch, T.controller_events, client_id="op-8"),
            Client(b, "controller", None, f"{T.root}/reply/#", T.all, client_id="ctl-spy"),
        ]
        try:
            await asyncio.sleep(0.1)  # let op-7's SUBACK land
            reply = await requester.request(T.set("battery", 802, "SetOp"), {"value": 1}, 3)
            assert reply == {"ok": True, "value": 1, "raw": 1}
            # The broker routed the reply to every matching subscription when op-7 got it, so
            # before the barrier: only op-7 received it.
            await asyncio.to_thread(marker, b, *spies)
            for spy in spies:
                assert not [t for t in spy.topics() if "/reply/" in t], spy.client_id
        finally:
            for spy in spies:
                spy.close()
            await op_client.stop()
            await responder.stop()

    asyncio.run(main())
