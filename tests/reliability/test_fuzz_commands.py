"""Fuzzed controller commands (issue 6, section 4): wrong types, NaN, huge numbers, unknown
fields, non-JSON, oversized and deeply nested payloads.

Many cases run against the controller's pure command path (the envelope parser plus
Controller.command with fake devices); a smaller batch goes over a real Mosquitto to the running
controller shell. Invariants: no exception other than a refusal, every refusal has a code from
topics.md and a message naming the field and the reason, a refusal changes nothing (state,
setpoint, device writes), an acceptance carries only finite numbers and strict JSON.
"""

from __future__ import annotations

import asyncio
import json
import math
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

from edge.controller.core import COMMANDS, Refused
from edge.controller.shell import ControllerService
from edge.mqtt import jsonutil
from edge.mqtt.client import Message
from edge.mqtt.rpc import parse_request
from tests.reliability.fuzz_cases import count, live_batch_settings, report, scaled
from tests.unit.controller_fakes import Rig, make_rig

REFUSAL_CODES = {
    "not_allowed_in_state",
    "invalid_payload",
    "out_of_range",
    "fault_active",
    "unknown_command",
}
POWER_KEYS = ("power_w", "current_a")

# -- strategies ---------------------------------------------------------------------------------
wild_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from(
        [10**400, 10**300, -(10**300), 2**63, 1e9, 1e9 + 1, 0, -0.0, 5e-324, 1.0, -1.0, 0.5]
    ),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308]),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
field_names = st.one_of(
    st.sampled_from(["power_w", "pf", "current_a", "value", "state", "POWER_W", " power_w"]),
    st.text(max_size=10),
)
power_bodies = st.fixed_dictionaries(
    {"power_w": wild_values}, optional={"pf": wild_values, "current_a": wild_values}
) | st.fixed_dictionaries({"current_a": wild_values}, optional={"pf": wild_values})
bodies = st.one_of(
    st.dictionaries(field_names, wild_values, max_size=3), power_bodies, power_bodies
)
# Mostly real commands (their validation is what is under test), sometimes anything.
command_names = st.one_of(
    st.sampled_from(COMMANDS),
    st.sampled_from(["charge", "discharge", "recover_soc"]),
    st.sampled_from(["charge", "discharge"]),
    st.text(max_size=12),
)


def _json_text(body: dict[str, Any]) -> bytes:
    """Python's json writes NaN/Infinity literals and huge ints: exactly the bad input we want."""
    return json.dumps(body).encode()


raw_payloads = st.one_of(
    bodies.map(_json_text),
    st.binary(max_size=120),
    st.text(max_size=120).map(str.encode),
    st.sampled_from(
        [
            b"[]",
            b"null",
            b"1",
            b'"x"',
            b"{",
            b"{}",
            b"   ",
            b'{"power_w": 1e400}',
            b'{"power_w": -1e400}',
            b'{"power_w": NaN}',
            b'{"power_w": Infinity}',
            b'{"power_w": 5000, "power_w": "dup"}',
            b'{"power_w": 1' + b"0" * 5000 + b"}",
            b"\xef\xbb\xbf{}",
            b'{"power_w": 5000}\x00',
        ]
    ),
    st.integers(1, 60_000).map(lambda n: b"[" * n),
    st.integers(1, 30_000).map(lambda n: b'{"a":' * n),
    st.integers(64 * 1024 - 30, 200_000).map(lambda n: b'{"power_w": 1, "x": "' + b"a" * n + b'"}'),
)


def _finite_numbers(obj: Any) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_finite_numbers(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite_numbers(v) for v in obj)
    return True


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _finite(v: int | float) -> bool:
    return isinstance(v, int) or math.isfinite(v)  # isfinite overflows on huge ints


def _check_outcome(rig: Rig, name: str, body: dict[str, Any], outcome: Any, before: Any) -> None:
    """The shared invariants of one command, whatever it was."""
    ctl = rig.ctl
    if isinstance(outcome, Refused):
        assert outcome.code in REFUSAL_CODES, outcome
        assert outcome.message.strip(), outcome
        # A refusal changes nothing: same state, same setpoint, no device write, no transition.
        assert (ctl.state, ctl.requested_w, ctl.applied_w, len(rig.dev.writes)) == before[:4]
        assert [e for e in rig.events[before[4] :] if e["kind"] == "transition"] == []
        assert rig.events[-1]["kind"] == "refused" and rig.events[-1]["command"] == name
        jsonutil.dumps(rig.events[-1])  # the refusal event is publishable
        if name not in COMMANDS:
            assert outcome.code == "unknown_command" and repr(name) in outcome.message
        key = "power_w" if ctl.s.user_command_mode == "POWER" else "current_a"
        allowed = {
            "charge": {key, "pf"},
            "discharge": {key, "pf"},
            "recover_soc": {key},
        }.get(name, set())
        unknown = sorted(set(body) - allowed)
        if name in COMMANDS and unknown:
            assert outcome.code == "invalid_payload", outcome
            assert repr(unknown[0]) in outcome.message, outcome
        if name in allowed and not unknown and key in body and outcome.code == "invalid_payload":
            assert key in outcome.message or "pf" in outcome.message, outcome
        return
    assert isinstance(outcome, dict), outcome
    reply = {"ok": True, **outcome}
    jsonutil.dumps(reply)  # strict JSON: raises on NaN/Infinity
    assert _finite_numbers(reply), reply
    assert reply["state"] == ctl.state
    for w in rig.dev.writes:
        assert not isinstance(w.value, float) or math.isfinite(w.value), w
    assert math.isfinite(ctl.requested_w) and math.isfinite(ctl.applied_w)
    assert ctl.limits.clamp(ctl.applied_w) == ctl.applied_w
    # A power command that went through had a real, finite, in-range number in it.
    if name in ("charge", "discharge"):
        key = "power_w" if ctl.s.user_command_mode == "POWER" else "current_a"
        v = body[key]
        assert _is_number(v) and _finite(v) and abs(v) <= 1e9, (name, body)


def _power_expectation(rig: Rig, name: str, body: dict[str, Any], outcome: Any) -> None:
    """Bad numbers in a power field must be refused, naming that field."""
    key = "power_w" if rig.ctl.s.user_command_mode == "POWER" else "current_a"
    if name not in ("charge", "discharge") or set(body) - {key, "pf"} or key not in body:
        return
    v = body[key]
    if not _is_number(v):
        assert isinstance(outcome, Refused) and outcome.code == "invalid_payload", (body, outcome)
        assert key in outcome.message
    elif not _finite(v) or abs(v) > 1e9:
        assert isinstance(outcome, Refused), f"{name} {body!r} was accepted: {outcome!r}"
        assert outcome.code in ("invalid_payload", "out_of_range") and key in outcome.message


async def _run_one(rig: Rig, name: str, body: dict[str, Any]) -> Any:
    ctl = rig.ctl
    before = (ctl.state, ctl.requested_w, ctl.applied_w, len(rig.dev.writes), len(rig.events))
    try:
        outcome: Any = await ctl.command(name, body)
    except Refused as r:
        outcome = r
    await rig.settle()
    _check_outcome(rig, name, body, outcome, before)
    _power_expectation(rig, name, body, outcome)
    await ctl.close()
    return outcome


rig_params = st.fixed_dictionaries(
    {
        "profile": st.sampled_from(["sunspec_704", "sunspec_123", "rhombus_res125"]),
        "user_command_mode": st.sampled_from(["POWER", "CURRENT"]),
        "strict_power_sign": st.booleans(),
    }
)


def _run_in_rig(params: dict[str, Any], holding: bool, name: str, body: dict[str, Any]) -> None:
    """One command against a fresh controller rig, stopped or holding, bounded in time."""

    async def main() -> None:
        rig = make_rig(**params)
        if holding:
            await rig.to_holding()
        await _run_one(rig, name, body)

    asyncio.run(asyncio.wait_for(main(), 20))


@settings(
    max_examples=scaled(300),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(params=rig_params, holding=st.booleans(), name=command_names, body=bodies)
def test_command_bodies_are_refused_clearly_or_applied_safely(
    params: dict[str, Any], holding: bool, name: str, body: dict[str, Any]
) -> None:
    count("controller_command_body")
    _run_in_rig(params, holding, name, body)


@settings(
    max_examples=scaled(200),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    params=rig_params,
    holding=st.booleans(),
    name=st.sampled_from(["charge", "discharge", "recover_soc"]),
    value=wild_values,
    pf=st.one_of(st.none(), wild_values),
)
def test_power_values_are_refused_clearly_or_applied_safely(
    params: dict[str, Any], holding: bool, name: str, value: Any, pf: Any
) -> None:
    """The power field itself, in the unit of the configured mode (W or A)."""
    count("controller_power_value")
    key = "power_w" if params["user_command_mode"] == "POWER" else "current_a"
    body = {key: value} if pf is None else {key: value, "pf": pf}
    _run_in_rig(params, holding, name, body)


@settings(
    max_examples=scaled(200),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(name=command_names, payload=raw_payloads, mqtt5=st.booleans())
def test_command_payload_bytes_through_the_envelope(name: str, payload: bytes, mqtt5: bool) -> None:
    """Bytes as they arrive on `{root}/controller/cmd/{name}`: parse_request, then the command
    (what rpc.serve does); every request has a reply address and a clear outcome."""
    count("controller_command_bytes")
    msg = Message(
        f"bess/s/controller/cmd/{name}",
        payload,
        qos=1,
        response_topic="bess/s/reply/fuzz/1" if mqtt5 else None,
        correlation_data=b"c" if mqtt5 else None,
    )
    request, err = parse_request(msg)
    if mqtt5:
        assert request.reply_to is not None and request.reply_to.topic == "bess/s/reply/fuzz/1"
    if err is not None:
        assert err.code == "invalid_payload" and err.message.startswith("body: "), err
        assert len(err.message) < 400, "an error message must not echo a huge payload"
        jsonutil.dumps(err.reply())
        return

    async def main() -> None:
        rig = make_rig()
        await rig.to_holding()
        await _run_one(rig, name, request.body)

    asyncio.run(asyncio.wait_for(main(), 20))


# -- over the broker, against the running controller shell ---------------------------------------
# Requests that must be refused whatever the state: an unknown field (every command checks its
# fields first), unknown commands, bad power values, and envelopes that do not parse.
guaranteed_bad = st.one_of(
    st.tuples(
        st.sampled_from(COMMANDS),
        st.dictionaries(st.sampled_from(["bogus", "Power_W", "x"]), wild_values, min_size=1).map(
            _json_text
        ),
    ),
    st.tuples(
        st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10).filter(
            lambda s: s not in COMMANDS
        ),
        bodies.map(_json_text),
    ),
    st.tuples(
        st.sampled_from(["charge", "discharge"]),
        st.one_of(
            st.none(),
            st.text(max_size=5),
            st.booleans(),
            st.sampled_from([2**80, -(2**80), 1e10, float("nan"), float("inf")]),
            st.lists(st.integers(), max_size=2),
        ).map(lambda v: _json_text({"power_w": v})),
    ),
    st.tuples(
        st.sampled_from(COMMANDS),
        st.sampled_from(
            [
                b"{not json",
                b"[1, 2]",
                b'"charge"',
                b"\xff\xfe\x00",
                b"[" * 5000,
                b'{"power_w": 1e400}',
                b'{"power_w": 1' + b"0" * 5000 + b"}",
                b'{"pad": "' + b"x" * 70_000 + b'"}',
            ]
        ),
    ),
)


FIXED_BAD_COMMANDS = [
    ("charge", b"[" * 5000),  # a RecursionError in the JSON parser once left this unanswered
    ("hold", b'{"a":' * 3000),
    ("charge", b'{"power_w": 1e400}'),  # parses to Infinity
    ("discharge", b'{"power_w": 1' + b"0" * 4000 + b"}"),
    ("discharge", b'{"power_w": 1' + b"0" * 5000 + b"}"),  # beyond int() digit limit
    ("charge", b'{"power_w": NaN}'),
    ("stop", b'{"pad": "' + b"x" * 70_000 + b'"}'),  # oversized: refused, never executed
    ("start", b"\xff\xfe{}"),
]


class _ThreadedController:
    """The controller shell plus a small device responder on their own asyncio loop, so the
    synchronous Probe can drive them from the test thread."""

    def __init__(self, broker: Any) -> None:
        from tests.integration.test_controller_mqtt import Responder, _site

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        site = _site(broker)
        self.svc = ControllerService(site.site, site.broker, site.controller)
        self.dev = self._call(self._make_responder(Responder, broker))
        self.stop: asyncio.Event = self._call(self._event())
        self.task = asyncio.run_coroutine_threadsafe(self.svc.run(self.stop), self.loop)

    async def _make_responder(self, cls: Any, broker: Any) -> Any:
        dev = cls(broker)
        await dev.start()
        return dev

    async def _event(self) -> asyncio.Event:
        return asyncio.Event()

    def _call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.stop.set)
            self.task.result(10)
            self._call(self.dev.client.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


@pytest.fixture
def running_controller(broker: Any) -> Iterator[_ThreadedController]:
    c = _ThreadedController(broker)
    try:
        yield c
    finally:
        c.close()


def _wait(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)


@pytest.mark.broker
def test_bad_commands_over_the_broker(
    running_controller: _ThreadedController, probe_factory: Any
) -> None:
    from tests.integration.test_controller_mqtt import T

    site = running_controller
    probe = probe_factory(f"{T.root}/controller/#")
    reply_base = f"{T.root}/reply/fuzzer"
    replies = probe_factory(f"{reply_base}/#")  # every request's reply comes back here
    probe.wait_for(T.controller_status, lambda m: m.payload == b"online", 5)
    r = probe.request(T.controller_cmd("start"), {})
    assert r["ok"] is True, r
    _wait(
        lambda: site.svc.controller is not None and site.svc.controller.state == "holding",
        5,
        "controller reaches holding",
    )
    # The transition event is published asynchronously: let it arrive before counting events,
    # or it is taken for a transition caused by a bad command.
    probe.wait_for(T.controller_events, lambda m: m.json().get("to") == "holding", 5)
    time.sleep(0.2)
    ctl = site.svc.controller
    assert ctl is not None
    sent: dict[str, tuple[str, bytes]] = {}

    @live_batch_settings(6)
    @given(st.lists(guaranteed_bad, min_size=1, max_size=8))
    @example(FIXED_BAD_COMMANDS)  # always sent, whatever hypothesis draws
    def batch(requests: list[tuple[str, bytes]]) -> None:
        before = (ctl.state, ctl.requested_w, ctl.applied_w)
        events_before = len(probe.snapshot())
        corrs = []
        for name, payload in requests:
            count("controller_command_broker")
            corr = uuid.uuid4().hex
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = f"{reply_base}/{corr}"
            props.CorrelationData = corr.encode()
            replies.client.publish(T.controller_cmd(name), payload, qos=1, properties=props)
            sent[corr] = (name, payload)
            corrs.append(corr)
        got = {}
        for corr in corrs:
            m = replies.wait_for(f"{reply_base}/{corr}", timeout=5)
            assert m.properties.CorrelationData == corr.encode()
            got[corr] = m.json()
        for corr, body in got.items():
            name, payload = sent[corr]
            assert body["ok"] is False, (name, payload[:80], body)
            err = body["error"]
            assert err["code"] in REFUSAL_CODES, (name, payload[:80], body)
            # never an echo of a whole payload (a 4000-digit number is echoed today: reported)
            assert err["message"] and len(err["message"]) < 8192, (name, err["message"][:200])
        # a refusal changes nothing
        assert (ctl.state, ctl.requested_w, ctl.applied_w) == before
        new = probe.snapshot()[events_before:]
        kinds = [m.json().get("kind") for m in new if m.topic == T.controller_events]
        assert "transition" not in kinds and "fault" not in kinds, kinds

    batch()
    time.sleep(0.3)  # a duplicate reply would have arrived by now
    per_corr: dict[str, int] = {}
    for m in replies.snapshot():
        if m.topic.startswith(f"{reply_base}/"):
            corr = m.topic.rsplit("/", 1)[1]
            per_corr[corr] = per_corr.get(corr, 0) + 1
    assert set(per_corr) == set(sent), "every request is answered"
    assert all(n == 1 for n in per_corr.values()), {k: n for k, n in per_corr.items() if n != 1}
    assert ctl.state == "holding"
    state = probe.wait_for(T.controller_state, lambda m: True, 3).json()
    latest = probe.latest(T.controller_state)
    assert latest is not None and latest.json()["state"] == "holding", state
    # the controller still obeys a good command after the abuse
    r = probe.request(T.controller_cmd("charge"), {"power_w": 1000})
    assert r["ok"] is True and r["state"] == "charging", r


def test_zz_report_counts() -> None:
    report(__name__)
