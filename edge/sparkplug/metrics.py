"""What the topic tree looks like as Sparkplug metrics (topics.md, "Sparkplug B").

An adapter device's metrics are its `meta` points, named by their topic suffix (`802/SoC`); the
controller's are its state fields and its commands. Pure functions, no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from edge.sparkplug.payload import DataType
from edge.sparkplug.session import MetricSpec

CONTROLLER = "controller"
WRITE_RESULT = "Writes/last_result"
COMMAND_RESULT = "Commands/last_result"

# Values on the tree are in engineering units (scale factors applied), so every measured or
# set-point number is a Double; enumerations, bitfields and scale factors stay integers.
_INTEGER_TYPES = {
    "enum16": DataType.UInt16,
    "bitfield16": DataType.UInt16,
    "enum32": DataType.UInt32,
    "bitfield32": DataType.UInt32,
    "bitfield64": DataType.UInt64,
    "sunssf": DataType.Int16,
}


def datatype_of(point_type: str | None) -> DataType:
    if point_type == "string":
        return DataType.String
    return _INTEGER_TYPES.get(point_type or "", DataType.Double)


def device_specs(meta: dict[str, Any]) -> list[MetricSpec]:
    """A device's metrics from its `meta` message, plus the result of its last DCMD write."""
    points = meta.get("points")
    specs = []
    if isinstance(points, dict):
        for key, p in sorted(points.items()):
            p = p if isinstance(p, dict) else {}
            unit = p.get("unit") if isinstance(p.get("unit"), str) else None
            specs.append(MetricSpec(key, datatype_of(p.get("type")), unit, p.get("access") == "RW"))
    specs.append(MetricSpec(WRITE_RESULT, DataType.String))
    return specs


_STATE: list[tuple[str, DataType, str | None]] = [
    ("state", DataType.String, None),
    ("soc", DataType.Double, "%"),
    ("setpoint/requested_w", DataType.Double, "W"),
    ("setpoint/applied_w", DataType.Double, "W"),
    ("limits/charge_w", DataType.Double, "W"),
    ("limits/discharge_w", DataType.Double, "W"),
    ("limits/source", DataType.String, None),
    ("faults/count", DataType.Int32, None),
    ("faults/codes", DataType.String, None),
    ("reason", DataType.String, None),
    ("mode/name", DataType.String, None),
    ("mode/source", DataType.String, None),
    ("why", DataType.String, None),
]

# Writable command metrics -> the controller command they send (topics.md, "Controller").
BUTTONS = {f"Commands/{c}": c for c in ("start", "stop", "hold", "reset")}
POWERS = {"Commands/charge_w": "charge", "Commands/discharge_w": "discharge"}
MODE = "Commands/mode"


def controller_specs() -> list[MetricSpec]:
    specs = [MetricSpec(n, t, u) for n, t, u in _STATE]
    specs += [MetricSpec(n, DataType.Boolean, writable=True) for n in BUTTONS]
    specs += [MetricSpec(n, DataType.Double, "W", writable=True) for n in POWERS]
    specs.append(MetricSpec(MODE, DataType.String, writable=True))
    specs.append(MetricSpec(COMMAND_RESULT, DataType.String))
    return specs


def controller_initial() -> dict[str, Any]:
    """Command metrics read back as idle: buttons false, powers 0."""
    return {
        **dict.fromkeys(BUTTONS, False),
        **dict.fromkeys(POWERS, 0.0),
        MODE: "",
        COMMAND_RESULT: None,
    }


def state_values(state: dict[str, Any]) -> dict[str, Any]:
    """The controller state JSON flattened to metric values."""

    def sub(key: str) -> dict[str, Any]:
        v = state.get(key)
        return v if isinstance(v, dict) else {}

    raw_faults = state.get("faults")
    faults: list[Any] = raw_faults if isinstance(raw_faults, list) else []
    codes = [str(f.get("code")) for f in faults if isinstance(f, dict)]
    return {
        "state": state.get("state"),
        "soc": state.get("soc"),
        "setpoint/requested_w": sub("setpoint").get("requested_w"),
        "setpoint/applied_w": sub("setpoint").get("applied_w"),
        "limits/charge_w": sub("limits").get("charge_w"),
        "limits/discharge_w": sub("limits").get("discharge_w"),
        "limits/source": sub("limits").get("source"),
        "faults/count": len(faults),
        "faults/codes": ",".join(codes),
        "reason": state.get("reason"),
        "mode/name": sub("mode").get("name"),
        "mode/source": sub("mode").get("source"),
        "why": state.get("why"),
    }


class NoCommand(Exception):
    """A command metric write that asks for nothing (a button written false)."""


class ReadOnly(ValueError):
    """A write to a metric that cannot be written (refused as `not_writable`)."""


def command_request(metric: str, value: Any) -> tuple[str, dict[str, Any]]:
    """The controller command and body a command-metric write stands for.

    Raises ValueError (a refusal, before anything is sent) or NoCommand. The controller
    validates the body itself, as for any other requester.
    """
    if metric in BUTTONS:
        if value is True:
            return BUTTONS[metric], {}
        if value is False:
            raise NoCommand(metric)
        raise ValueError(f"{metric}: expected a Boolean, got {value!r}")
    if metric in POWERS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{metric}: expected a number of W, got {value!r}")
        return POWERS[metric], {"power_w": value}
    if metric == MODE:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{metric}: expected a mode name or a JSON object, got {value!r}")
        text = value.strip()
        if text.startswith("{"):
            try:
                body = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"{metric}: not JSON: {exc}") from None
            if not isinstance(body, dict):
                raise ValueError(f"{metric}: expected a JSON object")
            return "mode", body
        return "mode", {"mode": text, "params": {}}
    raise ReadOnly(f"{metric}: not a command metric (read-only)")
