"""Fleet bridging (mosquitto/bridge.conf) with two real brokers: a site broker and an upstream one.

The site broker runs the dev config plus mosquitto/bridge.conf with its placeholders filled:
the site's `bess/site1/#` appears upstream as `fleet/bess/site1/#`. Checked: state flows up,
an upstream operator's command reaches the site controller once and its reply comes back
(MQTT 5 properties intact), and QoS 1 state and events published while the upstream broker is
down are delivered, in order, once it is back.
"""

from __future__ import annotations

import asyncio
import json
import socket
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
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.mosquitto import MosquittoProcess, dev_config, find_mosquitto, free_port
from edge.mqtt import BrokerSettings, MqttClient, Topics, serve
from edge.mqtt.rpc import Request
from tests.mqtt_probe import Probe

REPO = Path(__file__).resolve().parents[2]
SITE = "site1"
PREFIX = "fleet/"
T = Topics(SITE)


def _nodelay(sock: Any) -> None:
    """Nagle costs ~40-80 ms per request/response on loopback (field notes)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto not installed"),
]


def up(topic: str) -> str:
    """The upstream name of a site topic."""
    return PREFIX + topic


def bridge_config(upstream_port: int) -> str:
    """mosquitto/bridge.conf with its placeholders filled, exactly as the README says."""
    text = (REPO / "mosquitto" / "bridge.conf").read_text()
    filled = (
        text.replace("@SITE@", SITE)
        .replace("@UPSTREAM@", f"127.0.0.1:{upstream_port}")
        .replace("@PREFIX@", PREFIX)
    )
    directives = [ln for ln in filled.splitlines() if ln.strip() and not ln.startswith("#")]
    assert not [ln for ln in directives if "@" in ln], "unfilled placeholder in bridge.conf"
    return filled


@dataclass
class Fleet:
    site: MosquittoProcess
    upstream: MosquittoProcess


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    upstream = MosquittoProcess(workdir=tmp_path / "upstream")
    upstream.start()
    site_dir, site_port = tmp_path / "site", free_port()
    site = MosquittoProcess(
        port=site_port,
        workdir=site_dir,
        config_text=dev_config(site_port, site_dir / "data", extra=bridge_config(upstream.port)),
    )
    site.start()
    try:
        yield Fleet(site, upstream)
    finally:
        site.cleanup()
        upstream.cleanup()


class SessionClient:
    """An upstream MQTT 5 subscriber with a persistent session: the upstream broker keeps its
    QoS 1 messages while it is away, including across the upstream broker's own restart."""

    def __init__(self, port: int, *filters: str) -> None:
        self.messages: list[paho.MQTTMessage] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"fleet-{uuid.uuid4().hex[:6]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        c.on_socket_open = lambda _c, _u, sock: _nodelay(sock)

        def on_connect(client: paho.Client, *_: Any) -> None:
            client.subscribe([(f, 1) for f in filters])

        c.on_connect = on_connect
        c.on_subscribe = lambda *_: self._subscribed.set()
        c.on_message = self._on_message
        c.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
        c.connect("127.0.0.1", port, keepalive=5, clean_start=False, properties=props)
        c.loop_start()
        if not self._subscribed.wait(5):
            raise TimeoutError("upstream subscriber: no SUBACK within 5 s")
        self.client = c

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(msg)

    def on(self, topic: str) -> list[paho.MQTTMessage]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def wait_count(self, topic: str, n: int, timeout: float) -> list[paho.MQTTMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.on(topic)
            if len(got) >= n:
                return got
            time.sleep(0.01)
        raise TimeoutError(f"{len(self.on(topic))}/{n} messages on {topic} within {timeout}s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_bridge_up(fleet: Fleet, timeout: float = 8.0) -> float:
    """Publish probes on the site until one arrives upstream; return how long it took."""
    start = time.monotonic()
    topic = T.device("bridgecheck") + "/ping"
    watcher = Probe("127.0.0.1", fleet.upstream.port, up(topic))
    site = Probe("127.0.0.1", fleet.site.port, "none")
    try:
        while time.monotonic() - start < timeout:
            site.publish(topic, uuid.uuid4().hex, qos=0)
            if watcher.snapshot():
                return time.monotonic() - start
            time.sleep(0.05)
        raise TimeoutError(f"the bridge did not come up within {timeout}s")
    finally:
        watcher.close()
        site.close()


def test_site_state_flows_up_under_the_fleet_prefix(fleet: Fleet) -> None:
    wait_bridge_up(fleet)
    upstream = Probe("127.0.0.1", fleet.upstream.port, f"{PREFIX}#")
    site = Probe("127.0.0.1", fleet.site.port, "none")
    try:
        site.publish(T.controller_state, {"state": "holding"}, qos=1, retain=True)
        site.publish(T.point("battery", 802, "SoC"), "55.0", qos=0, retain=True)
        site.publish(T.status("battery"), "online", qos=1, retain=True)
        m = upstream.wait_for(up(T.controller_state), timeout=5)
        assert m.json() == {"state": "holding"}
        assert upstream.wait_for(up(T.point("battery", 802, "SoC")), timeout=5).payload == b"55.0"
        assert upstream.wait_for(up(T.status("battery")), timeout=5).payload == b"online"
        # Nothing arrives upstream outside the prefix (the probe watches fleet/# only, so also
        # check the site tree was not mirrored verbatim).
        plain = Probe("127.0.0.1", fleet.upstream.port, "bess/#")
        try:
            site.publish(T.controller_events, {"kind": "transition"}, qos=1)
            upstream.wait_for(up(T.controller_events), timeout=5)
            assert plain.snapshot() == []
        finally:
            plain.close()
        # The fleet sees the link state (bridge notification, retained).
        link = Probe("127.0.0.1", fleet.upstream.port, f"{PREFIX}uplink/{SITE}")
        try:
            assert link.wait_for(f"{PREFIX}uplink/{SITE}", timeout=5).payload == b"1"
        finally:
            link.close()
        # A late upstream subscriber gets the retained site state.
        late = Probe("127.0.0.1", fleet.upstream.port, up(T.controller_state))
        try:
            assert late.wait_for(up(T.controller_state), timeout=5).retain
        finally:
            late.close()
    finally:
        upstream.close()
        site.close()


def test_upstream_command_reaches_the_controller_and_the_reply_comes_back(fleet: Fleet) -> None:
    wait_bridge_up(fleet)
    executed: list[Request] = []

    async def main() -> None:
        controller = MqttClient(
            BrokerSettings(host="127.0.0.1", port=fleet.site.port, keepalive=5), "controller"
        )

        async def handle(req: Request) -> dict[str, Any]:
            executed.append(req)
            return {"state": "holding", "command": Topics.last_level(req.topic)}

        serve(controller, T.controller_cmd_filter, handle)
        await controller.start()
        # Watches what the controller receives, to check MQTT 5 properties crossed the bridge.
        site_watch = Probe("127.0.0.1", fleet.site.port, T.controller_cmd_filter)
        operator = Probe("127.0.0.1", fleet.upstream.port, up(f"{T.reply_base('op1')}/#"))
        upstream_cmds = Probe("127.0.0.1", fleet.upstream.port, up(T.controller_cmd_filter))
        try:
            corr = uuid.uuid4().hex.encode()
            props = Properties(PacketTypes.PUBLISH)
            # The ResponseTopic is the SITE's name; the reply is read under the fleet prefix.
            props.ResponseTopic = f"{T.reply_base('op1')}/1"
            props.CorrelationData = corr
            props.MessageExpiryInterval = 10
            t0 = time.monotonic()
            operator.client.publish(
                up(T.controller_cmd("get_state")), json.dumps({}), qos=1, properties=props
            ).wait_for_publish(5)
            reply = await asyncio.to_thread(
                operator.wait_for, up(f"{T.reply_base('op1')}/1"), timeout=5
            )
            round_trip_ms = (reply.at - t0) * 1000
            assert reply.json() == {"ok": True, "state": "holding", "command": "get_state"}
            assert reply.properties.CorrelationData == corr
            cmd = site_watch.wait_for(T.controller_cmd("get_state"), timeout=2)
            assert cmd.properties.ResponseTopic == f"{T.reply_base('op1')}/1"
            assert 0 < cmd.properties.MessageExpiryInterval <= 10
            # Executed once; no echo of the command back upstream and in again (no loop).
            await asyncio.sleep(0.3)
            assert len(executed) == 1
            assert len(upstream_cmds.snapshot()) == 1
            assert len(operator.snapshot()) == 1
            print(f"upstream command round trip through the bridge: {round_trip_ms:.1f} ms")
            # Device set requests are not bridged in: only controller commands are.
            site_sets = Probe("127.0.0.1", fleet.site.port, T.set_filter("battery"))
            try:
                operator.publish(up(T.set("battery", 802, "SetOp")), {"value": 1})
                operator.publish(up(T.controller_cmd("hold")), {})
                await asyncio.to_thread(site_watch.wait_for, T.controller_cmd("hold"), timeout=5)
                assert site_sets.snapshot() == []
            finally:
                site_sets.close()
        finally:
            for p in (site_watch, operator, upstream_cmds):
                p.close()
            await controller.stop()

    asyncio.run(main())


def test_link_outage_is_survived_with_qos1_messages_queued(fleet: Fleet) -> None:
    wait_bridge_up(fleet)
    events = up(T.controller_events)
    watcher = SessionClient(fleet.upstream.port, events, up(T.controller_state))
    site = Probe("127.0.0.1", fleet.site.port, "none")
    try:
        site.publish(T.controller_events, {"n": 0}, qos=1)
        watcher.wait_count(events, 1, timeout=5)

        fleet.upstream.stop()  # SIGTERM: the link is down
        t_down = time.monotonic()
        for n in range(1, 21):
            site.publish(T.controller_events, {"n": n}, qos=1)
        site.publish(T.controller_state, {"state": "fault", "n": 20}, qos=1, retain=True)
        time.sleep(1.0)  # an outage long enough for the bridge to notice and retry
        fleet.upstream.start()  # same port

        got = watcher.wait_count(events, 21, timeout=12)
        recovered_s = time.monotonic() - t_down
        assert [json.loads(m.payload)["n"] for m in got] == list(range(21))
        state = watcher.wait_count(up(T.controller_state), 1, timeout=2)
        assert json.loads(state[-1].payload) == {"state": "fault", "n": 20}
        print(f"21 events delivered upstream {recovered_s:.2f} s after the outage began")
    finally:
        site.close()
        watcher.close()


def test_upstream_commands_sent_during_an_outage_never_run_after_expiry(fleet: Fleet) -> None:
    """Safety across the bridge: a command whose expiry ran out while the link was down is never
    executed (topics.md: requests expire after 10 s).

    Observed with mosquitto 2.0.11: an MQTT 5 bridge connects upstream with session expiry 0,
    so the upstream broker keeps no session for it and drops commands sent while the link is
    down, expired or not (see mosquitto/README.md). Either way, nothing stale runs.
    """
    wait_bridge_up(fleet)
    executed: list[str] = []

    async def main() -> None:
        controller = MqttClient(
            BrokerSettings(host="127.0.0.1", port=fleet.site.port, keepalive=5), "controller"
        )

        async def handle(req: Request) -> dict[str, Any]:
            executed.append(Topics.last_level(req.topic))
            return {"state": "holding"}

        serve(controller, T.controller_cmd_filter, handle)
        await controller.start()
        operator = Probe("127.0.0.1", fleet.upstream.port, "none")

        def send(command: str, expiry_s: int) -> None:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = expiry_s
            operator.client.publish(
                up(T.controller_cmd(command)), "{}", qos=1, properties=props
            ).wait_for_publish(5)

        link = Probe("127.0.0.1", fleet.upstream.port, f"{PREFIX}uplink/{SITE}")
        try:
            await asyncio.to_thread(fleet.site.stop)  # the site broker, and so the link, is down
            # The fleet sees the link drop (the bridge's notification / will).
            await asyncio.to_thread(
                link.wait_for, f"{PREFIX}uplink/{SITE}", lambda m: m.payload == b"0", 5
            )
            send("stop", 1)
            send("hold", 30)
            await asyncio.sleep(2.2)  # "stop" expires while the link is down
            await asyncio.to_thread(fleet.site.start)
            await asyncio.to_thread(wait_bridge_up, fleet)
            await controller.wait_connected(5)
            # The link works again: a fresh command is executed.
            deadline = time.monotonic() + 8
            while "get_state" not in executed:
                assert time.monotonic() < deadline, (
                    f"no command executed after the outage: {executed}"
                )
                send("get_state", 2)
                await asyncio.sleep(0.3)
            assert "stop" not in executed, "an expired command was executed"
            assert set(executed) <= {"hold", "get_state"}
            print(f"after the outage the controller executed: {executed}")
        finally:
            operator.close()
            link.close()
            await controller.stop()

    asyncio.run(main())
