"""Fault injection requests: the refusal type, body parsing, and the site-level actions.

A request body is a JSON object (or `key=value` pairs from `bess-edge inject`); a bad field
is refused with InjectError naming it, and nothing changes. The device-level actions live
with the device (device.py); `load` and `cloud` act on the site physics here.
"""

from __future__ import annotations

from typing import Any

from adapters.simulator.physics import MeterPhysics, Physics, PvPhysics
from adapters.simulator.physics.grid import Grid


class InjectError(Exception):
    """A refused injection; `code` is one of topics.md's error codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def parse_bool(body: dict[str, Any], key: str, default: bool | None = None) -> bool:
    v = body.get(key, default)
    if isinstance(v, str) and v.lower() in ("true", "false", "1", "0", "on", "off"):
        return v.lower() in ("true", "1", "on")
    if not isinstance(v, bool):
        raise InjectError("invalid_payload", f"{key}: expected true or false, got {v!r}")
    return v


def parse_int(body: dict[str, Any], key: str, lo: int | None = None, hi: int | None = None) -> int:
    v = body.get(key)
    if isinstance(v, str):
        try:
            v = int(v, 0)
        except ValueError:
            raise InjectError("invalid_payload", f"{key}: expected an integer, got {v!r}") from None
    if not isinstance(v, int) or isinstance(v, bool):
        raise InjectError("invalid_payload", f"{key}: expected an integer, got {v!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise InjectError("out_of_range", f"{key}: {v} is outside {lo}..{hi}")
    return v


def parse_number(body: dict[str, Any], key: str, lo: float, hi: float) -> float:
    v = body.get(key)
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            raise InjectError("invalid_payload", f"{key}: expected a number, got {v!r}") from None
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v != v:
        raise InjectError("invalid_payload", f"{key}: expected a number, got {v!r}")
    if not lo <= v <= hi:
        raise InjectError("out_of_range", f"{key}: {v} is outside {lo:g}..{hi:g}")
    return float(v)


def inject_load(ph: Physics, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """`load`: `step_w` adds to the load profile (0 ends the step); `w` fixes the load
    (null releases it). Takes effect at once, in the next reading."""
    if not isinstance(ph, MeterPhysics):
        raise InjectError("invalid_payload", f"device {name}: load needs a meter")
    if "step_w" not in body and "w" not in body:
        raise InjectError("invalid_payload", "step_w or w: required")
    step = parse_number(body, "step_w", -10e6, 10e6) if "step_w" in body else ph.load.step_w
    fixed = ph.load.fixed_w
    if "w" in body:
        fixed = None if body["w"] is None else parse_number(body, "w", 0, 10e6)
    ph.load.step_w, ph.load.fixed_w = step, fixed
    ph.refresh()
    return {"load_w": ph.load_w}


def inject_cloud(ph: Physics, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """`cloud`: shade the PV array by `depth` (0..1) for `duration_s` simulated seconds."""
    if not isinstance(ph, PvPhysics):
        raise InjectError("invalid_payload", f"device {name}: cloud needs a PV device")
    depth = parse_number(body, "depth", 0, 1)
    duration = parse_number(body, "duration_s", 0, 86_400) if "duration_s" in body else 600.0
    ph.irradiance.shade(depth, duration)
    ph.power_w = ph.output()
    return {"W": round(ph.power_w, 1)}


def inject_grid(grid: Grid, body: dict[str, Any]) -> dict[str, Any]:
    """`grid`: `v`/`hz` now or over `ramp_s`, a `profile` of [s, V, Hz], or `release`."""
    if body.get("release") is True:
        grid.release()
    elif "profile" in body:
        raw = body["profile"]
        if not isinstance(raw, list) or not 1 <= len(raw) <= 10000:
            raise InjectError("invalid_payload", "profile: expected a list of [s, V, Hz]")
        pts: list[tuple[float, float, float]] = []
        for i, p in enumerate(raw):
            if not isinstance(p, list) or len(p) != 3:
                raise InjectError("invalid_payload", f"profile.{i}: expected [s, V, Hz]")
            row = dict(zip(("s", "v", "hz"), p, strict=True))
            s = parse_number(row, "s", 0, 1e7)
            if pts and s <= pts[-1][0]:
                raise InjectError("out_of_range", f"profile.{i}: s {s:g} not after the last")
            pts.append((s, parse_number(row, "v", 0, 1e5), parse_number(row, "hz", 40, 70)))
        grid.play(pts)
    else:
        if "v" not in body and "hz" not in body:
            raise InjectError("invalid_payload", "v, hz, profile or release: required")
        v = parse_number(body, "v", 0, 1e5) if "v" in body else None
        hz = parse_number(body, "hz", 40, 70) if "hz" in body else None
        ramp = parse_number(body, "ramp_s", 0, 86_400) if "ramp_s" in body else 0.0
        grid.set(v, hz, ramp)
    return {"v": round(grid.v, 2), "hz": round(grid.hz, 4)}
