"""The Sparkplug session core: bdSeq and seq over random connect/disconnect sequences, checked
by the test host's own decoder (tests/sparkplug_host.py), plus births, by-exception data,
aliases and STATE handling."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.mqtt.topics import SparkplugTopics
from edge.sparkplug.payload import CmdMetric, DataType
from edge.sparkplug.session import REBIRTH, EdgeSession, MetricSpec, Out
from tests.sparkplug_host import decode_payload

T = SparkplugTopics("g", "n")
SPECS = [MetricSpec("a", DataType.Double, "W"), MetricSpec("b", DataType.Int32)]


def kind(o: Out) -> str:
    return o.topic.split("/")[2]


def bd_of(raw: bytes) -> int:
    return next(m.value for m in decode_payload(raw).metrics if m.name == "bdSeq")


class Model:
    """Drives a session like the MQTT shell does and checks every message it returns."""

    def __init__(self, primary: bool) -> None:
        self.s = EdgeSession(T, "host" if primary else None)
        self.s.define("dev", SPECS)
        self.connects = 0
        self.connected = False
        self.will_bd: int | None = None
        self.session_bds: list[int] = []
        self.seq: int | None = None
        self.born_devices: set[str] = set()
        self.host_ts = 0
        self.value = 0
        self.now = 0

    def check(self, outs: list[Out]) -> None:
        for o in outs:
            assert self.connected, f"{kind(o)} published while disconnected"
            k = kind(o)
            if k == "NDEATH":
                assert decode_payload(o.payload).seq is None
                assert bd_of(o.payload) == self.will_bd
                self.seq = None
                self.born_devices.clear()
                continue
            p = decode_payload(o.payload)
            if k == "NBIRTH":
                assert p.seq == 0
                assert bd_of(o.payload) == self.will_bd, "NBIRTH bdSeq differs from the will's"
                self.seq = 0
                self.born_devices.clear()
                continue
            assert self.seq is not None, f"{k} outside a session"
            assert p.seq == (self.seq + 1) % 256, (k, p.seq, self.seq)
            self.seq = p.seq
            dev = o.topic.split("/")[4]
            if k == "DBIRTH":
                self.born_devices.add(dev)
            elif k == "DDEATH":
                self.born_devices.discard(dev)
            else:
                assert k == "DDATA" and dev in self.born_devices, (k, dev)

    def attempt(self, accepted: bool) -> None:
        if self.connected:
            return
        will = self.s.prepare_connect(0, self.connects)
        if not accepted:
            return
        self.connects += 1
        self.connected = True
        self.will_bd = bd_of(will)
        if self.session_bds:
            assert self.will_bd == (self.session_bds[-1] + 1) % 256
        self.session_bds.append(self.will_bd)
        self.check(self.s.on_connect(0))

    def drop(self) -> None:
        if self.connected:
            self.s.on_disconnect()
            self.connected = False
            self.seq = None
            assert self.s.flush(0) == []

    def step(self, op: tuple[str, Any]) -> None:
        name, arg = op
        self.now += 400
        if name == "attempt":
            self.attempt(arg)
        elif name == "drop":
            self.drop()
        elif name == "rebirth":
            self.check(self.s.ncmd([CmdMetric(REBIRTH, None, DataType.Boolean, True)], 0))
        elif name == "online":
            self.check(self.s.set_online("dev", arg, 0))
        elif name == "data":
            for _ in range(arg):
                self.value += 1
                self.now += 10
                self.s.update("dev", "a", float(self.value))
                self.check(self.s.flush(self.now))
        elif name == "host":
            self.host_ts += 1
            raw = f'{{"online": {"true" if arg else "false"}, "timestamp": {self.host_ts}}}'
            self.check(self.s.host_state(raw.encode(), 0))
        if self.s.primary_host is not None and not self.s.host_online:
            assert not self.s.node_born


OPS = st.one_of(
    st.tuples(st.just("attempt"), st.booleans()),
    st.tuples(st.just("drop"), st.none()),
    st.tuples(st.just("rebirth"), st.none()),
    st.tuples(st.just("online"), st.booleans()),
    st.tuples(st.just("data"), st.integers(1, 300)),
    st.tuples(st.just("host"), st.booleans()),
)


@settings(max_examples=150, deadline=None)
@given(primary=st.booleans(), ops=st.lists(OPS, max_size=60))
def test_bdseq_and_seq_rules_hold_over_any_sequence(primary: bool, ops: list[Any]) -> None:
    m = Model(primary)
    for op in ops:
        m.step(op)


def test_bdseq_wraps_after_255_and_failed_attempts_use_no_number() -> None:
    m = Model(primary=False)
    for _ in range(300):
        m.attempt(False)
        m.attempt(False)
        m.attempt(True)
        m.drop()
    assert m.session_bds[:3] == [0, 1, 2]
    assert m.session_bds[255:258] == [255, 0, 1]


def test_births_carry_values_and_data_goes_out_by_exception() -> None:
    s = EdgeSession(T)
    s.prepare_connect(0, 0)
    s.on_connect(0)
    s.define("dev", SPECS)
    s.update("dev", "a", 1.5)
    assert s.set_online("dev", True, 0) == []
    # Born once every metric has a value, or after birth_wait_ms with nulls for the rest.
    assert s.flush(0) == [] and s.flush(999) == []
    (birth,) = s.flush(1000)
    assert kind(birth) == "DBIRTH"
    metrics = {m.name: m for m in decode_payload(birth.payload).metrics}
    assert metrics["a"].value == 1.5 and metrics["a"].properties["engUnit"] == "W"
    assert metrics["b"].is_null
    alias = metrics["a"].alias
    s.update("dev", "a", 1.5)  # unchanged: nothing
    assert s.flush(0) == []
    s.update("dev", "a", 2.0)
    s.update("dev", "b", 3)
    (data,) = s.flush(0)
    got = decode_payload(data.payload).metrics
    assert {(m.alias, m.value) for m in got} == {(alias, 2.0), (metrics["b"].alias, 3)}
    assert all(m.name is None for m in got)
    s.resend("dev", "a")  # a refused write: the current value again
    (again,) = s.flush(0)
    assert [(m.alias, m.value) for m in decode_payload(again.payload).metrics] == [(alias, 2.0)]
    # A new definition is announced by a new DBIRTH; aliases of kept metrics stay.
    s.define("dev", [*SPECS, MetricSpec("c", DataType.String)])
    assert s.flush(2000) == []
    s.update("dev", "c", "x")  # now complete: no need to wait
    (rebirth,) = s.flush(2001)
    assert kind(rebirth) == "DBIRTH"
    assert {m.name: m.alias for m in decode_payload(rebirth.payload).metrics}["a"] == alias


def test_aliases_are_unique_across_the_edge_node() -> None:
    s = EdgeSession(T)
    s.define("x", SPECS)
    s.define("y", SPECS)
    aliases = [m.alias for d in s.devices.values() for m in d.defs.values()]
    aliases.append(s.rebirth_def.alias)
    assert len(aliases) == len(set(aliases))
    assert s.resolve("y", CmdMetric(None, s.devices["y"].defs["a"].alias, None, 1.0)).name == "a"
    assert s.resolve("x", CmdMetric(None, s.devices["y"].defs["a"].alias, None, 1.0)) is None
    assert s.resolve("x", CmdMetric("nope", None, None, 1)) is None


def test_malformed_host_state_is_ignored() -> None:
    s = EdgeSession(T, "host")
    s.prepare_connect(0, 0)
    assert s.on_connect(0) == []
    for raw in (b"", b"online", b"[]", b'{"online": "yes", "timestamp": 1}', b'{"online": true}'):
        assert s.host_state(raw, 0) == []
    assert not s.node_born
    assert [kind(o) for o in s.host_state(b'{"online": true, "timestamp": 5}', 0)] == ["NBIRTH"]


def test_after_a_reconnect_the_primary_host_state_is_awaited_again() -> None:
    s = EdgeSession(T, "host")
    online = b'{"online": true, "timestamp": 5}'
    s.prepare_connect(0, 0)
    s.on_connect(0)
    assert [kind(o) for o in s.host_state(online, 0)] == ["NBIRTH"]
    assert s.host_state(online, 0) == []  # the same STATE twice: no second birth
    s.on_disconnect()
    s.prepare_connect(0, 1)
    assert s.on_connect(0) == []  # not before the retained STATE says online again
    assert [kind(o) for o in s.host_state(online, 0)] == ["NBIRTH"]
    s.on_disconnect()
    s.prepare_connect(0, 2)
    s.on_connect(0)
    assert s.host_state(b'{"online": false, "timestamp": 6}', 0) == []  # never born: no NDEATH
