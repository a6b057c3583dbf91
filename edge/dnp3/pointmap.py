"""The DNP3 point map: a TOML data file (edge/dnp3/points.toml), read and checked here.

Errors name the table, the entry and the key, so a bad map is refused at start-up
(`check-config` exit 2) instead of misbehaving in front of a SCADA master.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from typing import Any

BINARY_SOURCES = re.compile(
    r"^(status:[a-z0-9][a-z0-9_-]{0,31}|state:[a-z_]+|fault:(\*|[a-z0-9_]+)|mode:[a-z0-9_]+"
    r"|dnp3:fallback|grid:(volt_var|volt_watt|freq_watt|pf|smoothing))$"
)
ANALOG_SOURCES = re.compile(
    r"^(ctl:[a-z_]+(\.[a-z_]+)*|point:[a-z0-9][a-z0-9_-]{0,31}/[A-Za-z0-9_-]+/[A-Za-z0-9_/]+"
    r"|state_code|soc_band:[a-z0-9][a-z0-9_-]{0,31}|dnp3:events_dropped)$"
)
BINARY_ACTIONS = (
    "start_stop",
    "charge_discharge",
    "coordinated",
    "hold",
    "reset",
    "limit",
    "grid_support",
    "grid:volt_var",
    "grid:volt_watt",
    "grid:freq_watt",
    "grid:pf",
)
# `grid:<function>.<key>` (a parameter of `cmd/grid`) or `grid:<function>.points.<i>.x|y`
# (one coordinate of one curve point); the controller validates the values.
GRID_PARAMS = re.compile(
    r"^grid:((volt_var|volt_watt)\.(points\.[0-9]\.[xy]|response_s)|volt_var\.var_rating_var"
    r"|freq_watt\.(db_over_hz|db_under_hz|k_over|k_under|response_s)|pf\.pf)$"
)
PARAMS = (
    "charge_discharge.power_w",
    "coordinated.target_soc",
    "coordinated.duration_min",
    "coordinated.max_power_w",
    "limit.power_w",
)
MAX_INDEX = 65535


class PointMapError(ValueError):
    """A point map that cannot be used; the message names where and why."""


@dataclass(frozen=True)
class BinaryInput:
    index: int
    name: str
    source: str
    event_class: int = 1


@dataclass(frozen=True)
class AnalogInput:
    index: int
    name: str
    source: str
    scale: float = 1.0
    unit: str = ""
    event_class: int = 3
    deadband: float = 0.0


@dataclass(frozen=True)
class BinaryOutput:
    index: int
    name: str
    action: str
    sbo: bool = False


@dataclass(frozen=True)
class AnalogOutput:
    index: int
    name: str
    action: str
    scale: float = 1.0
    unit: str = ""
    min: float = -math.inf
    max: float = math.inf
    sbo: bool = False

    @property
    def param(self) -> str | None:
        return self.action.removeprefix("param:") if self.action.startswith("param:") else None

    @property
    def grid(self) -> tuple[str, str] | None:
        """(function, key) of a `grid:` action; key may be `points.<i>.x|y`."""
        if not self.action.startswith("grid:"):
            return None
        fn, _, key = self.action.removeprefix("grid:").partition(".")
        return fn, key


@dataclass(frozen=True)
class PointMap:
    state_codes: tuple[str, ...]
    binary_inputs: tuple[BinaryInput, ...]
    analog_inputs: tuple[AnalogInput, ...]
    binary_outputs: tuple[BinaryOutput, ...]
    analog_outputs: tuple[AnalogOutput, ...]

    def binary_output(self, index: int) -> BinaryOutput | None:
        return next((p for p in self.binary_outputs if p.index == index), None)

    def analog_output(self, index: int) -> AnalogOutput | None:
        return next((p for p in self.analog_outputs if p.index == index), None)


_COMMON = {"index", "name"}
_KEYS = {
    "binary_input": _COMMON | {"source", "class"},
    "analog_input": _COMMON | {"source", "scale", "unit", "class", "deadband"},
    "binary_output": _COMMON | {"action", "sbo"},
    "analog_output": _COMMON | {"action", "scale", "unit", "min", "max", "sbo"},
}


def load_pointmap(text: str, where: str = "<pointmap>") -> PointMap:
    """Parse and validate a point map document."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PointMapError(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"state_codes", *_KEYS})
    if unknown:
        raise PointMapError(f"{where}: {unknown[0]}: unknown table")
    codes = doc.get("state_codes", [])
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise PointMapError(f"{where}: state_codes: expected a list of state names")
    tables = {kind: _entries(doc, kind, where) for kind in _KEYS}
    return PointMap(
        state_codes=tuple(codes),
        binary_inputs=tuple(
            BinaryInput(e["index"], e["name"], _source(e, BINARY_SOURCES, loc), _cls(e, 1, loc))
            for e, loc in tables["binary_input"]
        ),
        analog_inputs=tuple(
            AnalogInput(
                e["index"],
                e["name"],
                _source(e, ANALOG_SOURCES, loc),
                _num(e, "scale", 1.0, loc, positive=True),
                str(e.get("unit", "")),
                _cls(e, 3, loc),
                _num(e, "deadband", 0.0, loc),
            )
            for e, loc in tables["analog_input"]
        ),
        binary_outputs=tuple(
            BinaryOutput(e["index"], e["name"], _binary_action(e, loc), _bool(e, "sbo", loc))
            for e, loc in tables["binary_output"]
        ),
        analog_outputs=tuple(_analog_output(e, loc) for e, loc in tables["analog_output"]),
    )


def _entries(doc: dict[str, Any], kind: str, where: str) -> list[tuple[dict[str, Any], str]]:
    raw = doc.get(kind, [])
    if not isinstance(raw, list):
        raise PointMapError(f"{where}: {kind}: expected an array of tables ([[{kind}]])")
    seen: set[int] = set()
    out = []
    for i, e in enumerate(raw):
        loc = f"{where}: {kind}[{i}]"
        extra = sorted(set(e) - _KEYS[kind])
        if extra:
            raise PointMapError(f"{loc}.{extra[0]}: unknown key")
        idx = e.get("index")
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx <= MAX_INDEX:
            raise PointMapError(f"{loc}.index: expected an integer 0-{MAX_INDEX}")
        if idx in seen:
            raise PointMapError(f"{loc}.index: {idx} is used twice")
        seen.add(idx)
        if not isinstance(e.get("name"), str) or not e["name"]:
            raise PointMapError(f"{loc}.name: expected a non-empty string")
        out.append((e, loc))
    return out


def _source(e: dict[str, Any], pattern: re.Pattern[str], loc: str) -> str:
    src = e.get("source")
    if not isinstance(src, str) or not pattern.match(src):
        raise PointMapError(f"{loc}.source: {src!r} is not a known source for this point type")
    return src


def _cls(e: dict[str, Any], default: int, loc: str) -> int:
    c = e.get("class", default)
    if isinstance(c, bool) or c not in (0, 1, 2, 3):
        raise PointMapError(f"{loc}.class: expected 0 (no events), 1, 2 or 3")
    return int(c)


def _num(e: dict[str, Any], key: str, default: float, loc: str, positive: bool = False) -> float:
    if key not in e:
        return default
    v = e[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise PointMapError(f"{loc}.{key}: expected a finite number")
    if positive and v <= 0:
        raise PointMapError(f"{loc}.{key}: must be > 0")
    return float(v)


def _bool(e: dict[str, Any], key: str, loc: str) -> bool:
    v = e.get(key, False)
    if not isinstance(v, bool):
        raise PointMapError(f"{loc}.{key}: expected true or false")
    return v


def _binary_action(e: dict[str, Any], loc: str) -> str:
    a = e.get("action")
    if a not in BINARY_ACTIONS:
        raise PointMapError(f"{loc}.action: {a!r}: expected one of {', '.join(BINARY_ACTIONS)}")
    return str(a)


def _analog_output(e: dict[str, Any], loc: str) -> AnalogOutput:
    a = e.get("action")
    ok = isinstance(a, str) and (
        a == "grid_support"
        or (a.startswith("param:") and a.removeprefix("param:") in PARAMS)
        or GRID_PARAMS.match(a) is not None
    )
    if not ok:
        expect = ", ".join(["grid_support", *(f"param:{p}" for p in PARAMS)])
        raise PointMapError(
            f"{loc}.action: {a!r}: expected one of {expect}, or a grid:<function>.<key>"
            " (edge/dnp3/README.md)"
        )
    lo, hi = _num(e, "min", -math.inf, loc), _num(e, "max", math.inf, loc)
    if lo > hi:
        raise PointMapError(f"{loc}.min: {lo:g} is above max {hi:g}")
    return AnalogOutput(
        e["index"],
        e["name"],
        str(a),
        _num(e, "scale", 1.0, loc, positive=True),
        str(e.get("unit", "")),
        lo,
        hi,
        _bool(e, "sbo", loc),
    )
