"""`[controller.grid]`: the curves and parameters of each grid-support function, validated.

Curves are `[[x, y], ...]` lists: x strictly increasing, every point in range; a bad point is
named by its index (`grid.volt_var.points.2: V 97 not above point 1 (98)`). The same parser
checks a `cmd/grid` body, so a refused command changes nothing.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from edge.controller.errors import Refused, short

FUNCTIONS = ("volt_var", "volt_watt", "freq_watt", "pf", "smoothing")
Curve = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class VoltVar:
    enabled: bool = False
    points: Curve = ((92.0, 44.0), (98.0, 0.0), (102.0, 0.0), (108.0, -44.0))  # V %, Q % of var
    var_rating_var: float = 0.0  # Q at 100 % (W-equivalent VAr); 0: the inverter rating
    response_s: float = 10.0


@dataclass(frozen=True)
class VoltWatt:
    enabled: bool = False
    points: Curve = ((106.0, 100.0), (110.0, 0.0))  # V %, P cap in % of rating_w
    response_s: float = 10.0


@dataclass(frozen=True)
class FreqWatt:
    enabled: bool = False
    db_over_hz: float = 0.036
    db_under_hz: float = 0.036
    k_over: float = 0.05  # per-unit droop: 5 % frequency change for 100 % power change
    k_under: float = 0.05
    response_s: float = 5.0


@dataclass(frozen=True)
class PowerFactor:
    enabled: bool = False
    pf: float = 1.0  # 0 < pf <= 1
    excitation: str = "over"  # "over": inject VAr (capacitive), "under": absorb


@dataclass(frozen=True)
class Smoothing:
    enabled: bool = False
    pv_rating_w: float = 0.0
    ramp_pct_per_min: float = 10.0  # POC ramp limit, % of pv_rating_w per minute


@dataclass(frozen=True)
class GridSettings:
    nominal_v: float = 277.0  # the meter's phase voltage at 100 %
    nominal_hz: float = 60.0
    rating_w: float = 0.0  # P at 100 % for volt-watt and droop; 0: the inverter rating
    volt_var: VoltVar = field(default_factory=VoltVar)
    volt_watt: VoltWatt = field(default_factory=VoltWatt)
    freq_watt: FreqWatt = field(default_factory=FreqWatt)
    pf: PowerFactor = field(default_factory=PowerFactor)
    smoothing: Smoothing = field(default_factory=Smoothing)

    def enabled(self) -> list[str]:
        return [f for f in FUNCTIONS if getattr(self, f).enabled]

    def with_function(self, name: str, body: Mapping[str, Any]) -> GridSettings:
        """A copy with function `name` replaced from a `cmd/grid` body (Refused if bad)."""
        if name not in FUNCTIONS:
            raise Refused("invalid_payload", f"function: must be one of {', '.join(FUNCTIONS)}")
        merged = {**_as_dict(getattr(self, name)), **dict(body)}
        return replace(self, **{name: _PARSERS[name](merged, f"grid.{name}")})  # type: ignore[arg-type]


def _as_dict(obj: Any) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in obj.__dataclass_fields__}


def _num(
    data: Mapping[str, Any], key: str, where: str, lo: float, hi: float, default: float
) -> float:
    v = data.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(float(v)):
        raise Refused("invalid_payload", f"{where}.{key}: expected a number, got {short(v)}")
    if not lo <= float(v) <= hi:
        raise Refused("out_of_range", f"{where}.{key}: {short(v)} not in [{lo:g}, {hi:g}]")
    return float(v)


def _flag(data: Mapping[str, Any], where: str, default: bool) -> bool:
    v = data.get("enabled", default)
    if not isinstance(v, bool):
        raise Refused("invalid_payload", f"{where}.enabled: expected true or false")
    return v


def _keys(data: Mapping[str, Any], where: str, allowed: tuple[str, ...]) -> None:
    if not isinstance(data, Mapping):
        raise Refused("invalid_payload", f"{where}: expected a table")
    for k in data:
        if k not in allowed:
            raise Refused("invalid_payload", f"{where}.{k}: unknown key")


def parse_curve(
    raw: Any,
    where: str,
    x: tuple[str, float, float],
    y: tuple[str, float, float],
    y_order: int = 0,
) -> Curve:
    """`[[x, y], ...]`: 2 to 10 points, x strictly increasing, y monotonic in `y_order`
    (-1 non-increasing, +1 non-decreasing, 0 either way but one way), all in range."""
    if not isinstance(raw, list | tuple) or not 2 <= len(raw) <= 10:
        raise Refused("invalid_payload", f"{where}: expected a list of 2 to 10 [x, y] points")
    pts: list[tuple[float, float]] = []
    for i, p in enumerate(raw):
        w = f"{where}.{i}"
        if not isinstance(p, list | tuple) or len(p) != 2:
            raise Refused("invalid_payload", f"{w}: expected [{x[0]}, {y[0]}]")
        vals = []
        for (name, lo, hi), v in zip((x, y), p, strict=True):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise Refused("invalid_payload", f"{w}: {name} {short(v)} is not a number")
            if not lo <= v <= hi:
                raise Refused("out_of_range", f"{w}: {name} {v:g} not in [{lo:g}, {hi:g}]")
            vals.append(float(v))
        if pts and vals[0] <= pts[-1][0]:
            raise Refused(
                "out_of_range", f"{w}: {x[0]} {vals[0]:g} not above point {i - 1} ({pts[-1][0]:g})"
            )
        pts.append((vals[0], vals[1]))
    dys = [b[1] - a[1] for a, b in itertools.pairwise(pts)]
    order = y_order or (1 if any(d > 0 for d in dys) else -1)
    for i, d in enumerate(dys, start=1):
        if d * order < 0:
            how = "falls below" if order > 0 else "rises above"
            raise Refused(
                "out_of_range",
                f"{where}.{i}: {y[0]} {pts[i][1]:g} {how} point {i - 1} ({pts[i - 1][1]:g});"
                " the curve must be monotonic",
            )
    return tuple(pts)


def _volt_var(d: Mapping[str, Any], w: str) -> VoltVar:
    _keys(d, w, ("enabled", "points", "var_rating_var", "response_s"))
    pts = parse_curve(
        d.get("points", VoltVar.points), f"{w}.points", ("V", 50, 150), ("Q", -100, 100), y_order=-1
    )
    return VoltVar(
        _flag(d, w, False),
        pts,
        _num(d, "var_rating_var", w, 0, 1e9, 0.0),
        _num(d, "response_s", w, 0, 600, 10.0),
    )


def _volt_watt(d: Mapping[str, Any], w: str) -> VoltWatt:
    _keys(d, w, ("enabled", "points", "response_s"))
    pts = parse_curve(
        d.get("points", VoltWatt.points),
        f"{w}.points",
        ("V", 50, 150),
        ("P", -100, 100),
        y_order=-1,
    )
    return VoltWatt(_flag(d, w, False), pts, _num(d, "response_s", w, 0, 600, 10.0))


def _freq_watt(d: Mapping[str, Any], w: str) -> FreqWatt:
    keys = ("enabled", "db_over_hz", "db_under_hz", "k_over", "k_under", "response_s")
    _keys(d, w, keys)
    return FreqWatt(
        _flag(d, w, False),
        _num(d, "db_over_hz", w, 0, 1, 0.036),
        _num(d, "db_under_hz", w, 0, 1, 0.036),
        _num(d, "k_over", w, 0.01, 0.1, 0.05),
        _num(d, "k_under", w, 0.01, 0.1, 0.05),
        _num(d, "response_s", w, 0, 600, 5.0),
    )


def _pf(d: Mapping[str, Any], w: str) -> PowerFactor:
    _keys(d, w, ("enabled", "pf", "excitation"))
    exc = d.get("excitation", "over")
    if exc not in ("over", "under"):
        raise Refused("invalid_payload", f"{w}.excitation: must be 'over' or 'under'")
    return PowerFactor(_flag(d, w, False), _num(d, "pf", w, 0.8, 1.0, 1.0), exc)


def _smoothing(d: Mapping[str, Any], w: str) -> Smoothing:
    _keys(d, w, ("enabled", "pv_rating_w", "ramp_pct_per_min"))
    s = Smoothing(
        _flag(d, w, False),
        _num(d, "pv_rating_w", w, 0, 1e9, 0.0),
        _num(d, "ramp_pct_per_min", w, 0.1, 100, 10.0),
    )
    if s.enabled and s.pv_rating_w <= 0:
        raise Refused("out_of_range", f"{w}.pv_rating_w: must be above 0 when enabled")
    return s


_PARSERS = {
    "volt_var": _volt_var,
    "volt_watt": _volt_watt,
    "freq_watt": _freq_watt,
    "pf": _pf,
    "smoothing": _smoothing,
}


def parse_grid(raw: Mapping[str, Any] | None) -> GridSettings:
    """`[controller.grid]` -> GridSettings; Refused naming the key (and point index)."""
    if raw is None:
        return GridSettings()
    w = "grid"
    _keys(raw, w, ("nominal_v", "nominal_hz", "rating_w", *FUNCTIONS))
    funcs = {f: _PARSERS[f](raw.get(f, {}), f"{w}.{f}") for f in FUNCTIONS}
    return GridSettings(
        _num(raw, "nominal_v", w, 1, 100000, 277.0),
        _num(raw, "nominal_hz", w, 45, 66, 60.0),
        _num(raw, "rating_w", w, 0, 1e9, 0.0),
        **funcs,  # type: ignore[arg-type]
    )
