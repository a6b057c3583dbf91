"""Sparkplug payload encoding (checked with the test host's decoder written from the spec),
metric mapping of the topic tree, command metrics, and the `[sparkplug]` section."""

from __future__ import annotations

import math
from typing import Any

import pytest

from edge.config import ConfigError, parse_site
from edge.sparkplug import metrics as mx
from edge.sparkplug.payload import DataType, MetricDef, birth, coerce, data, decode_cmd, ndeath
from tests.sparkplug_host import (
    BOOLEAN,
    DOUBLE,
    INT16,
    INT32,
    INT64,
    STRING,
    UINT32,
    decode_payload,
    encode_cmd,
)


@pytest.mark.parametrize(
    "dtype, value, wire_type",
    [
        (DataType.Int16, -32768, INT16),
        (DataType.Int32, -5, INT32),
        (DataType.Int64, -(2**40), INT64),
        (DataType.UInt32, 2**32 - 1, UINT32),
        (DataType.Double, 1234.5, DOUBLE),
        (DataType.Boolean, True, BOOLEAN),
        (DataType.String, "ünïcode", STRING),
    ],
)
def test_each_datatype_round_trips_through_an_independent_decoder(
    dtype: DataType, value: Any, wire_type: int
) -> None:
    d = MetricDef("x", 7, dtype, "W", writable=True)
    p = decode_payload(birth(1000, 0, [(d, value)]))
    (m,) = p.metrics
    assert (m.name, m.alias, m.datatype, m.value) == ("x", 7, wire_type, value)
    assert m.properties == {"engUnit": "W", "readOnly": False}
    assert p.timestamp == 1000 and p.seq == 0
    # DATA: alias only, no name, no datatype; the host knows them from the birth.
    (m2,) = decode_payload(data(1001, 5, [(d, coerce(dtype, value))])).metrics
    assert m2.name is None and m2.alias == 7 and m2.datatype is None


@pytest.mark.parametrize(
    "dtype, value",
    [
        (DataType.Double, math.nan),
        (DataType.Double, "12"),
        (DataType.Double, True),
        (DataType.Int16, 40000),
        (DataType.UInt32, -1),
        (DataType.Int32, 1.5),
        (DataType.Boolean, 1),
        (DataType.Double, None),
    ],
)
def test_unrepresentable_values_are_sent_as_null(dtype: DataType, value: Any) -> None:
    assert coerce(dtype, value) is None
    (m,) = decode_payload(birth(0, 0, [(MetricDef("x", 1, dtype), value)])).metrics
    assert m.is_null and m.value is None


def test_ndeath_carries_bdseq_and_no_seq() -> None:
    p = decode_payload(ndeath(42, 5))
    assert p.seq is None
    assert [(m.name, m.datatype, m.value) for m in p.metrics] == [("bdSeq", INT64, 42)]


def test_commands_from_an_independent_encoder_decode() -> None:
    raw = encode_cmd([("Node Control/Rebirth", BOOLEAN, True), (12, INT16, -3), (9, DOUBLE, None)])
    got = [(c.name, c.alias, c.value) for c in decode_cmd(raw)]
    assert got == [("Node Control/Rebirth", None, True), (None, 12, -3), (None, 9, None)]
    with pytest.raises(ValueError, match="not a Sparkplug B payload"):
        decode_cmd(b"\xff\xff\xff")


def test_meta_points_become_typed_metrics() -> None:
    meta = {
        "points": {
            "802/SoC": {"unit": "%WHRtg", "type": "uint16", "access": "R"},
            "802/SetOp": {"unit": None, "type": "enum16", "access": "RW"},
            "1/Mn": {"unit": None, "type": "string", "access": "R"},
            "802/W_SF": {"unit": None, "type": "sunssf", "access": "R"},
        }
    }
    specs = {s.name: s for s in mx.device_specs(meta)}
    assert specs["802/SoC"].datatype is DataType.Double and specs["802/SoC"].unit == "%WHRtg"
    assert specs["802/SetOp"].datatype is DataType.UInt16 and specs["802/SetOp"].writable
    assert specs["1/Mn"].datatype is DataType.String
    assert specs["802/W_SF"].datatype is DataType.Int16
    assert not specs[mx.WRITE_RESULT].writable
    assert [s.name for s in mx.device_specs({"points": "junk"})] == [mx.WRITE_RESULT]


def test_controller_state_flattens_and_survives_missing_fields() -> None:
    v = mx.state_values(
        {
            "state": "charging",
            "setpoint": {"requested_w": 5000, "applied_w": 4800},
            "faults": [{"code": "battery_alarm"}, {"code": "device_offline"}],
            "mode": {"name": "peak_shaving", "source": "command"},
            "why": "peak_shaving: ...",
        }
    )
    assert v["setpoint/applied_w"] == 4800 and v["faults/count"] == 2
    assert v["faults/codes"] == "battery_alarm,device_offline" and v["mode/name"] == "peak_shaving"
    empty = mx.state_values({"faults": "x", "setpoint": 3})
    assert empty["faults/count"] == 0 and empty["setpoint/applied_w"] is None
    names = {s.name for s in mx.controller_specs()}
    assert set(v) <= names


def test_command_metrics_map_to_controller_commands() -> None:
    assert mx.command_request("Commands/start", True) == ("start", {})
    assert mx.command_request("Commands/charge_w", 5000.0) == ("charge", {"power_w": 5000.0})
    assert mx.command_request("Commands/mode", "peak_shaving") == (
        "mode",
        {"mode": "peak_shaving", "params": {}},
    )
    body = '{"mode": "peak_shaving", "params": {"target_w": 50000}}'
    assert mx.command_request("Commands/mode", body)[1]["params"] == {"target_w": 50000}
    with pytest.raises(mx.NoCommand):
        mx.command_request("Commands/stop", False)
    with pytest.raises(mx.ReadOnly):
        mx.command_request("soc", 50.0)
    for metric, value in [
        ("Commands/start", 1),
        ("Commands/charge_w", "5000"),
        ("Commands/charge_w", True),
        ("Commands/mode", "{not json"),
        ("Commands/mode", ""),
        ("state", "stopped"),
    ]:
        with pytest.raises(ValueError, match=metric.split("/")[0]):
            mx.command_request(metric, value)


def _site(section: dict[str, Any]) -> Any:
    return parse_site({"site": {"id": "s1"}, "sparkplug": section})


def test_the_section_defaults_and_refusals() -> None:
    cfg = _site({}).section("sparkplug")
    assert cfg.enabled and cfg.group_id == "bess" and cfg.edge_node_id is None
    assert parse_site({"site": {"id": "s1"}}).section("sparkplug") is None  # off by default
    for bad, key in [
        ({"group_id": "a/b"}, "sparkplug.group_id"),
        ({"edge_node_id": "x+"}, "sparkplug.edge_node_id"),
        ({"primary_host_id": ""}, "sparkplug.primary_host_id"),
        ({"publish_interval_s": 0}, "sparkplug.publish_interval_s"),
        ({"devices": ["Bad Name"]}, "sparkplug.devices"),
        ({"colour": 1}, "sparkplug.colour"),
    ]:
        with pytest.raises(ConfigError) as exc:
            _site(bad)
        assert key in str(exc.value), str(exc.value)
