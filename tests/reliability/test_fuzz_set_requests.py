"""Fuzzed set requests to a Modbus adapter (issue 6, section 4).

1. The encode path, pure: every writable point of the SunSpec models the site uses and of the
   Rhombus point map, random values and scale factors through to_raw -> encode_raw ->
   decode_raw. Either an EncodeError with a topics.md code naming the point, or registers that
   decode back to what was meant.
2. The adapter's request handler against the real simulator over Modbus TCP, no broker:
   random topics and bodies into DeviceAdapter._on_set (what rpc.serve calls). Either an RpcError
   with a topics.md code, or a write confirmed by read-back that the device really holds; a
   refusal leaves every writable register of the device unchanged.
3. A smaller batch over a real Mosquitto to the running adapter: one reply per request, and the
   device's registers unchanged after the refusals.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sunspec2 import device as ss_device

from adapters.modbus.device import DeviceAdapter
from adapters.modbus.points import (
    EncodeError,
    PointSpec,
    decode_raw,
    encode_raw,
    engineering,
    to_raw,
)
from adapters.modbus.service import make_adapters
from adapters.pointmap.reader import builtin_path, load_pointmap
from adapters.simulator import SiteSimulator
from adapters.sunspec.layout import build_layout
from edge.bridge.controls import BASE_KEYS, EVENT_KEYS
from edge.config import parse_site
from edge.mqtt import jsonutil
from edge.mqtt.client import Message
from edge.mqtt.rpc import RpcError, parse_request
from edge.mqtt.topics import Topics
from tests.integration.adapter_harness import SiteRunner
from tests.reliability.fuzz_cases import count, live_batch_settings, report, scaled

SET_CODES = {
    "invalid_payload",
    "unknown_point",
    "not_writable",
    "out_of_range",
    "device_error",
    "timeout",
    "offline",
}


def _sunspec_points(model_id: int) -> tuple[PointSpec, ...]:
    length = ss_device.Model(model_id=model_id).len
    return build_layout(model_id, 40002, length, [model_id, length] + [0] * length).points


ALL_SPECS: list[PointSpec] = [
    *(p for mid in (1, 802, 704, 123, 124) for p in _sunspec_points(mid)),
    *load_pointmap(builtin_path("res125"), "res125"),
]
# Types the models above do not write, as a point map or a SunSpec model might declare them.
SYNTHETIC = [
    PointSpec("x/f32", "x", "f32", 0, 2, "float32", access="RW"),
    PointSpec("x/f64", "x", "f64", 0, 4, "float64", access="RW", sf_key="x/SF"),
    PointSpec("x/i32", "x", "i32", 0, 2, "int32", access="RW", sf_const=-2),
    PointSpec("x/u64", "x", "u64", 0, 4, "uint64", access="RW"),
    PointSpec("x/s", "x", "s", 0, 4, "string", access="RW"),
    PointSpec(
        "m/f32le",
        "m",
        "f32le",
        0,
        2,
        "float32",
        access="RW",
        sunspec=False,
        word_order="little",
        scale=0.001,
        offset=-40.0,
    ),
    PointSpec(
        "m/u32",
        "m",
        "u32",
        0,
        2,
        "uint32",
        access="RW",
        sunspec=False,
        byte_order="little",
        scale=10.0,
    ),
]
WRITABLE = [p for p in ALL_SPECS if p.writable] + SYNTHETIC

wild_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-70_000, max_value=70_000),
    st.sampled_from([10**400, -(10**400), 2**64, 2**63, 0xFFFF, 0x8000, -0x8000, 0x10000, -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 0.5, -0.0]),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
scale_factors = st.one_of(st.none(), st.integers(-10, 10), st.sampled_from([-32768, 32767, 99]))


@settings(max_examples=scaled(600), deadline=None, database=None)
@given(spec=st.sampled_from(WRITABLE), value=wild_values, sf=scale_factors)
def test_encode_path_refuses_clearly_or_round_trips(spec: PointSpec, value: Any, sf: Any) -> None:
    count("set_encode_pure")
    try:
        raw = to_raw(spec, value, sf)
    except EncodeError as exc:
        assert exc.code in SET_CODES, exc
        assert str(exc).startswith(spec.key + ":"), exc
        assert len(str(exc)) < 600, "the message must not echo a huge value"
        return
    regs = encode_raw(spec, raw)
    assert len(regs) == spec.length and all(0 <= r <= 0xFFFF for r in regs), (spec, raw, regs)
    back = decode_raw(spec, regs)
    if isinstance(raw, str):
        # strings end at the first NUL and lose trailing spaces; an empty one is not implemented
        assert back == (raw.split("\0", 1)[0].rstrip(" ") or None), (spec.key, raw, back)
        return
    if spec.type == "float32":
        assert back == struct.unpack(">f", struct.pack(">f", raw))[0], (spec.key, raw, back)
    else:
        assert back == raw, (spec.key, value, raw, back)
    # The engineering value read back is the requested value to within one register step.
    eng = engineering(spec, back, sf if spec.sf_key else None)
    assert eng is not None and isinstance(eng, int | float) and math.isfinite(eng)
    exp = (sf if spec.sf_key else spec.sf_const or 0) if spec.sunspec else 0
    step = 10.0**exp if spec.sunspec else abs(spec.scale)
    if spec.type not in ("float32", "float64"):
        assert abs(eng - value) <= step / 2 + 1e-9 * max(1.0, abs(value)), (spec.key, value, eng)


# -- the adapter's handler against the real simulator (no broker) ------------------------------
SIM: list[dict[str, Any]] = [
    {"name": "battery", "kind": "battery"},
    {"name": "inverter", "kind": "inverter"},
    {"name": "rhombus", "kind": "inverter", "profile": "res125", "battery": "battery"},
]
TABLES: list[dict[str, Any]] = [
    {"name": "battery", "kind": "sunspec", "limits": {"802/SoCRsvMin": [0, 40]}},
    {"name": "inverter", "kind": "sunspec", "limits": {"704/WSet*": [-50_000, 50_000]}},
    {"name": "rhombus", "kind": "pointmap", "pointmap": "res125"},
]
T = Topics("t")


class _DirectRig:
    """The simulator and three connected DeviceAdapters on a background loop, no MQTT broker
    (the adapters' MQTT clients are never started, so their publishes are dropped)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim = SiteSimulator({"devices": SIM}, site="t")
        self.call(self.sim.start(run_physics=False))
        site = parse_site(
            {
                "site": {"id": "t"},
                "devices": [{**d, "port": self.sim.port(d["name"])} for d in TABLES],
            }
        )
        self.adapters: dict[str, DeviceAdapter] = {a.name: a for a in make_adapters(site)}
        for a in self.adapters.values():
            self.call(a._connect())
            assert a.online, a.name

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def registers(self, device: str) -> list[int]:
        """The device's whole register image as it serves it now (a copy)."""

        async def read() -> list[int]:
            return list(self.sim.device(device).image.registers())

        out: list[int] = self.call(read())
        return out

    def raw_at(self, device: str, spec: PointSpec) -> Any:
        regs = self.registers(device)
        o = spec.address - self.sim.device(device).image.base
        return decode_raw(spec, regs[o : o + spec.length])

    def close(self) -> None:
        try:
            for a in self.adapters.values():
                a.bus.close()
            self.call(self.sim.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


@pytest.fixture(scope="module")
def direct_rig() -> Iterator[_DirectRig]:
    rig = _DirectRig()
    try:
        yield rig
    finally:
        rig.close()


def _points_of(device: str, writable: bool = False) -> list[str]:
    models = {"rhombus": ("res125",), "battery": ("1", "802")}.get(device, ("1", "704"))
    return [p.key for p in ALL_SPECS if p.model in models and (p.writable or not writable)]


def _targets(writable: bool) -> st.SearchStrategy[tuple[str, str]]:
    return st.sampled_from(["battery", "inverter", "rhombus"]).flatmap(
        lambda d: st.tuples(st.just(d), st.sampled_from(_points_of(d, writable)))
    )


set_targets = st.one_of(
    _targets(writable=True),
    _targets(writable=True),
    _targets(writable=False),
    st.tuples(
        st.sampled_from(["battery", "inverter"]),
        st.sampled_from(["802/Nope", "999/SoC", "802", "704/PFWInj", "802/SoC/extra", "res125/X"]),
    ),
)
plausible = st.one_of(st.integers(0, 100), st.floats(0, 100), st.integers(-2000, 70_000))
set_payloads = st.one_of(
    plausible.map(lambda v: json.dumps({"value": v}).encode()),
    wild_values.map(lambda v: json.dumps({"value": v}).encode()),
    wild_values.map(lambda v: json.dumps({"value": v, "extra": 1}).encode()),
    st.sampled_from(
        [
            b"{}",
            b"[]",
            b"null",
            b"{not json",
            b'{"value": 1e400}',
            b'{"value": NaN}',
            b'{"value": 1' + b"0" * 5000 + b"}",
            b"[" * 3000,
            b'{"Value": 1}',
            b'{"value": "' + b"x" * 70_000 + b'"}',
        ]
    ),
    st.binary(max_size=60),
)


@settings(
    max_examples=scaled(250),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(target=set_targets, payload=set_payloads)
def test_adapter_set_handler_against_the_simulator(
    direct_rig: _DirectRig, target: tuple[str, str], payload: bytes
) -> None:
    count("set_handler_sim")
    device, key = target
    adapter = direct_rig.adapters[device]
    topic = f"{T.device(device)}/set/{key}"
    request, err = parse_request(Message(topic, payload, qos=1, response_topic="r"))
    if err is not None:
        assert err.code == "invalid_payload" and err.message.startswith("body: ")
        return
    before = direct_rig.registers(device)
    try:
        reply: Any = direct_rig.call(adapter._on_set(request))
    except RpcError as exc:
        assert exc.code in SET_CODES, exc
        assert exc.message.strip(), exc
        assert exc.code not in ("timeout", "offline"), f"healthy device answered {exc}"
        # the message names the field (value), the point, or the device
        assert any(s in exc.message for s in ("value", key, device)), exc
        jsonutil.dumps(exc.reply())
        if exc.code != "device_error":  # device_error = the device itself refused or moved
            assert direct_rig.registers(device) == before, f"refused {payload[:60]!r} changed it"
        return
    # accepted: confirmed by read-back, the device holds it, the reply is strict JSON
    jsonutil.dumps({"ok": True, **reply})
    value = request.body["value"]
    spec = adapter.specs[key]
    assert "value" in reply and "raw" in reply
    assert direct_rig.raw_at(device, spec) == reply["raw"] or (
        reply.get("readback") == "self_cleared" and direct_rig.raw_at(device, spec) == 0
    ), (key, reply)
    if isinstance(value, str) or reply.get("readback") is not None or reply["value"] is None:
        return
    assert isinstance(value, int | float) and math.isfinite(value)
    sf = adapter.decoder.sf_values.get(spec.sf_key) if spec.sf_key else spec.sf_const
    step = 10.0 ** (sf or 0) if spec.sunspec else abs(spec.scale)
    assert abs(reply["value"] - value) <= step / 2 + 1e-6 * max(1.0, abs(value)), (
        key,
        value,
        reply,
    )


# -- over the broker -----------------------------------------------------------------------
bad_set_requests = st.one_of(
    st.tuples(
        st.sampled_from(["802/SetOp", "802/CtrlHb", "802/SoCRsvMin", "1/DA"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.text(max_size=6),
            st.lists(st.integers(), max_size=2),
            st.sampled_from([2**70, -1, 0x10000, 0xFFFF, 1e10, -0.6]),
        ).map(lambda v: json.dumps({"value": v}).encode()),
    ),
    st.tuples(
        st.sampled_from(["802/SoC", "802/V", "1/Mn", "802/Nope", "9/x"]),
        st.integers(0, 3).map(lambda v: json.dumps({"value": v}).encode()),
    ),
    st.tuples(
        st.sampled_from(["802/SetOp", "802/CtrlHb"]),
        st.sampled_from(
            [
                b"{not json",
                b"[]",
                b"{}",
                b'{"value": 1e400}',
                b'{"value": NaN}',
                b"[" * 5000,
                b'{"value": "' + b"x" * 70_000 + b'"}',
            ]
        ),
    ),
)


FIXED_BAD_SETS = [
    ("802/SetOp", b"[" * 5000),  # RecursionError in the JSON parser: once no reply at all
    ("802/CtrlHb", b'{"value": 1e400}'),  # Infinity by overflow
    ("802/CtrlHb", b'{"value": 1' + b"0" * 4000 + b"}"),  # once an OverflowError in to_raw
    ("802/SoCRsvMin", b'{"value": [1]}'),  # once a TypeError against the site limits
    ("802/SetOp", b'{"value": {"a": 1}}'),
    ("802/SetOp", b'{"value": 99}'),  # not one of the enum's symbols
    ("802/SoC", b'{"value": 50}'),  # read-only
]


@pytest.mark.broker
def test_bad_set_requests_over_the_broker(broker: Any, probe_factory: Any) -> None:
    root = T.root
    with SiteRunner(broker, SIM[:1], TABLES[:1]) as site:
        probe = probe_factory(f"{root}/battery/status")
        probe.wait_for(f"{root}/battery/status", lambda m: m.payload == b"online", timeout=5)
        reply_base = f"{root}/reply/setfuzz"
        replies = probe_factory(f"{reply_base}/#")
        watched = ["802/SetOp", "802/CtrlHb", "802/SoCRsvMin", "1/DA"]

        def regs() -> dict[str, Any]:
            return {k: site.value("battery", *k.split("/")) for k in watched}

        before = regs()
        sent: dict[str, tuple[str, bytes]] = {}

        @live_batch_settings(5)
        @given(st.lists(bad_set_requests, min_size=1, max_size=8))
        @example(FIXED_BAD_SETS)  # always sent, whatever hypothesis draws
        def batch(requests: list[tuple[str, bytes]]) -> None:
            corrs = []
            for key, payload in requests:
                count("set_broker")
                corr = uuid.uuid4().hex
                props = Properties(PacketTypes.PUBLISH)
                props.ResponseTopic = f"{reply_base}/{corr}"
                props.CorrelationData = corr.encode()
                replies.client.publish(
                    f"{root}/battery/set/{key}", payload, qos=1, properties=props
                )
                sent[corr] = (key, payload)
                corrs.append(corr)
            for corr in corrs:
                m = replies.wait_for(f"{reply_base}/{corr}", timeout=5)
                body = m.json()
                key, payload = sent[corr]
                assert body["ok"] is False, (key, payload[:60], body)
                assert body["error"]["code"] in SET_CODES - {"timeout", "offline"}, body
                assert body["error"]["message"], body
            assert regs() == before, "a refused request changed a register"

        batch()
        time.sleep(0.3)
        per: dict[str, int] = {}
        for m in replies.snapshot():
            corr = m.topic.rsplit("/", 1)[1]
            per[corr] = per.get(corr, 0) + 1
        assert set(per) == set(sent) and all(n == 1 for n in per.values()), per
        # still serving good requests
        r = probe.request(f"{root}/battery/set/802/CtrlHb", {"value": 5})
        assert r == {"ok": True, "value": 5, "raw": 5}, r


def test_zz_report_counts() -> None:
    report(__name__)


# -- set requests to a 2030.5 device (the bridge's set/derc and set/124/WChaMax) ----------------
DERC_KEYS = [*BASE_KEYS, *EVENT_KEYS, "cancel"]
derc_bodies = st.dictionaries(
    st.one_of(st.sampled_from(DERC_KEYS), st.sampled_from(DERC_KEYS), st.text(max_size=8)),
    st.one_of(
        wild_values,
        st.integers(-10, 4000),
        st.fixed_dictionaries({"multiplier": wild_values, "value": wild_values}),
    ),
    max_size=5,
)


@settings(max_examples=scaled(250), deadline=None, database=None)
@given(body=derc_bodies, wchamax=wild_values, settings_known=st.booleans())
def test_bridge_set_requests_refuse_clearly(
    body: dict[str, Any], wchamax: Any, settings_known: bool
) -> None:
    from edge.bridge.controls import ControlError
    from tests.unit.test_bridge_core import SETTINGS, A, make

    count("set_bridge_pure")
    core, _, _ = make()
    if settings_known:
        assert core.handle("PUT", "/edev/1/der/1/derg", {}, SETTINGS, A).status == 204
    for call in (lambda: core.set_derc("bat", body), lambda: core.set_wchamax("bat", wchamax)):
        try:
            reply = call()
        except ControlError as exc:
            assert exc.code in SET_CODES, exc
            assert exc.message.strip(), exc
            continue
        jsonutil.dumps({"ok": True, **reply})
        assert reply.get("mrid"), reply
