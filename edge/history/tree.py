"""Reading the site's topic tree (topics.md) into series and events, for the recorder and the
live view alike: which topics are telemetry, which are events, what a state carries."""

from __future__ import annotations

from typing import Any

NOT_POINTS = frozenset({"status", "meta", "ts", "events", "set", "cmd"})
SERVICE_NAMES = frozenset({"controller", "bridge", "sim", "reply", "operator"})

# The controller state's numbers, recorded as series named `controller/<name>`.
STATE_SERIES = {
    "soc": ("soc",),
    "setpoint_w": ("setpoint", "applied_w"),
    "requested_w": ("setpoint", "requested_w"),
    "charge_limit_w": ("limits", "charge_w"),
    "discharge_limit_w": ("limits", "discharge_w"),
}
# What of the state makes a change worth an event (not `ts`, not the numbers above).
STATE_EVENT_KEYS = ("state", "reason", "faults", "mode", "why")


def split(root: str, topic: str) -> tuple[str, str] | None:
    """`bess/s1/battery/802/SoC` -> ("battery", "802/SoC"); None outside the site."""
    prefix = root + "/"
    if not topic.startswith(prefix):
        return None
    head, _, rest = topic[len(prefix) :].partition("/")
    return (head, rest) if head and rest else None


def is_point(head: str, rest: str) -> bool:
    """A device telemetry point (`{device}/{model}/{point}`), not status, meta, set, ..."""
    if head in SERVICE_NAMES:
        return False
    first = rest.split("/", 1)[0]
    return "/" in rest and first not in NOT_POINTS


def number(value: Any) -> float | None:
    """A JSON scalar as a float for a time series; booleans, strings and null are not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


def state_numbers(state: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, path in STATE_SERIES.items():
        v = number(_dig(state, path))
        if v is not None:
            out[name] = v
    return out


def state_summary(state: dict[str, Any]) -> dict[str, Any]:
    return {k: state.get(k) for k in STATE_EVENT_KEYS if k in state}
