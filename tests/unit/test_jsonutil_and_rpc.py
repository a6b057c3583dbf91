"""Strict JSON and request parsing, without a broker."""

from __future__ import annotations

import math

import pytest

from edge.mqtt import jsonutil
from edge.mqtt.client import Message
from edge.mqtt.rpc import error_reply, parse_request


@pytest.mark.parametrize("text", ["NaN", '{"v": Infinity}', '{"v": -Infinity}'])
def test_loads_refuses_non_json_numbers(text: str) -> None:
    with pytest.raises(ValueError):
        jsonutil.loads(text)


def test_dumps_refuses_nan() -> None:
    with pytest.raises(ValueError):
        jsonutil.dumps({"v": math.nan})


def test_loads_refuses_oversized_payload() -> None:
    with pytest.raises(ValueError, match="limit"):
        jsonutil.loads(b" " * (jsonutil.MAX_PAYLOAD_BYTES + 1))


def test_mqtt5_reply_address_wins_and_body_keys_are_stripped() -> None:
    msg = Message(
        "bess/s/controller/cmd/charge",
        b'{"power_w": 5, "correlation_id": "c1"}',
        response_topic="bess/s/reply/x/1",
        correlation_data=b"k",
    )
    req, err = parse_request(msg)
    assert err is None
    assert req.body == {"power_w": 5}
    assert req.reply_to is not None
    assert (req.reply_to.topic, req.reply_to.correlation_data, req.reply_to.correlation_id) == (
        "bess/s/reply/x/1",
        b"k",
        "c1",
    )


def test_mqtt311_reply_address_from_body() -> None:
    msg = Message("t", b'{"response_topic": "r/1", "correlation_id": "c9", "a": 1}')
    req, err = parse_request(msg)
    assert err is None and req.body == {"a": 1}
    assert req.reply_to is not None and req.reply_to.topic == "r/1"
    assert req.reply_to.correlation_id == "c9"


@pytest.mark.parametrize("payload", [b"{", b"[1]", b'"s"', b"\xff\xfe", b'{"a": NaN}'])
def test_bad_bodies_keep_the_reply_address(payload: bytes) -> None:
    req, err = parse_request(Message("t", payload, response_topic="r/2"))
    assert err is not None and err.code == "invalid_payload"
    assert req.reply_to is not None and req.reply_to.topic == "r/2"


def test_empty_payload_is_an_empty_object() -> None:
    req, err = parse_request(Message("t", b""))
    assert err is None and req.body == {}


def test_error_reply_shape() -> None:
    assert error_reply("out_of_range", "power_w: too big", state="holding", limit=5) == {
        "ok": False,
        "error": {"code": "out_of_range", "message": "power_w: too big", "limit": 5},
        "state": "holding",
    }


def test_dumps_fast_path_writes_what_json_writes() -> None:
    import json as _json

    from edge.mqtt import jsonutil as ju

    for v in [0, -5, 10**30, 1.5, 1e-7, 1e22, -0.0, 2.0, None, True, "x", [1, None], {"a": 1.5}]:
        assert ju.dumps(v) == _json.dumps(v, separators=(",", ":")), v
    for bad in (float("nan"), float("inf"), [float("-inf")]):
        with pytest.raises(ValueError):
            ju.dumps(bad)
