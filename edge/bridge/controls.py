"""DERControl scheduling: events, supersession, cancellation, status at read time. No I/O.

2030.5 events are never deleted while their scheduled period lasts: a newer overlapping event of
the same program (same primacy) marks the older one superseded, and a cancel marks it
cancelled. `currentStatus` is not stored; it is computed from the clock when the event is read.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

SCHEDULED, ACTIVE, CANCELLED, CANCELLED_RANDOM, SUPERSEDED = 0, 1, 2, 3, 4
HISTORY_LIMIT = 64  # finished events kept per device (beyond that the oldest are dropped)
INT16 = 32767


class ControlError(ValueError):
    """A refused control; `code` is a topics.md error code, the message names the field."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Control:
    mrid: str
    creation_time: int
    start: int
    duration: int
    base: dict[str, Any]
    primacy: int
    randomize_start: int | None = None
    randomize_duration: int | None = None
    description: str | None = None
    cancelled_at: int | None = None
    superseded_at: int | None = None
    version: int = 0

    @property
    def end(self) -> int:
        return self.start + self.duration

    def status(self, now: float) -> int | None:
        """currentStatus at `now`; None once the event is over (no longer listed)."""
        if now >= self.end + abs(self.randomize_duration or 0):
            return None
        if self.cancelled_at is not None:
            randomized = bool(self.randomize_start or self.randomize_duration)
            return CANCELLED_RANDOM if randomized else CANCELLED
        if self.superseded_at is not None and now >= self.superseded_at:
            return SUPERSEDED
        return ACTIVE if now >= self.start else SCHEDULED

    def status_time(self, now: float) -> int:
        """EventStatus.dateTime: when the status last changed."""
        if self.cancelled_at is not None:
            return self.cancelled_at
        if self.superseded_at is not None and now >= self.superseded_at:
            return self.superseded_at
        return self.start if now >= self.start else self.creation_time


def new_mrid(pen: int = 0) -> str:
    """A fresh server mRID: 24 random hex digits, then the PEN in 8 decimal digits (CSIP-AUS)."""
    return uuid.uuid4().hex.upper()[:24] + f"{pen % 10**8:08d}"


@dataclass
class Schedule:
    """The controls of one device, across its programs (one program per primacy)."""

    controls: list[Control] = field(default_factory=list)

    def add(self, control: Control, now: float) -> list[str]:
        """Add an event; supersede live, overlapping events of the same program. Returns them."""
        superseded = []
        for c in self.controls:
            if c.primacy != control.primacy or c.cancelled_at or c.superseded_at:
                continue
            if c.status(now) is None:
                continue
            if c.start < control.end and control.start < c.end:
                # Superseded from the newer event's start (2030.5 §12.1.3.1), not before.
                c.superseded_at = max(int(now), control.start)
                c.version += 1
                superseded.append(c.mrid)
        self.controls.append(control)
        self._prune(now)
        return superseded

    def cancel(self, mrid: str, now: float) -> Control:
        c = self.get(mrid)
        if c is None:
            raise ControlError("unknown_point", f"cancel: no control with mRID {mrid!r}")
        if c.status(now) is None:
            raise ControlError("out_of_range", f"cancel: control {mrid} has already ended")
        if c.cancelled_at is None:
            c.cancelled_at = int(now)
            c.version += 1
        return c

    def get(self, mrid: str) -> Control | None:
        return next((c for c in self.controls if c.mrid == mrid.upper()), None)

    def listed(self, primacy: int, now: float) -> list[Control]:
        """Events of a program still within their scheduled period, in 2030.5 list order."""
        items = [c for c in self.controls if c.primacy == primacy and c.status(now) is not None]
        # interval.start ascending, then creationTime descending, then mRID descending: three
        # stable sorts, last key first (cheaper than a composite key with a negated string)
        items.sort(key=lambda c: c.mrid, reverse=True)
        items.sort(key=lambda c: c.creation_time, reverse=True)
        items.sort(key=lambda c: c.start)
        return items

    def active(self, primacy: int, now: float) -> list[Control]:
        return [c for c in self.listed(primacy, now) if c.status(now) == ACTIVE]

    def primacies(self) -> set[int]:
        return {c.primacy for c in self.controls}

    def _prune(self, now: float) -> None:
        done = [c for c in self.controls if c.status(now) is None]
        if len(done) > HISTORY_LIMIT:
            drop = {id(c) for c in sorted(done, key=lambda c: c.end)[: len(done) - HISTORY_LIMIT]}
            self.controls = [c for c in self.controls if id(c) not in drop]


def _finite(v: int | float) -> bool:
    """math.isfinite without its OverflowError on integers beyond a float (JSON allows them)."""
    return isinstance(v, int) or math.isfinite(v)


# --- building controls ----------------------------------------------------------------------


def scaled(value: float) -> tuple[int, int]:
    """(multiplier, value) with an Int16 value, for ActivePower/ReactivePower."""
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    mult = 0
    d = Decimal(str(value))
    while abs(d.scaleb(-mult)) > INT16:
        mult += 1
    while mult > -3 and d.scaleb(-mult) != d.scaleb(-mult).to_integral_value():
        if abs(d.scaleb(-(mult - 1))) > INT16:
            break
        mult -= 1
    return mult, int(d.scaleb(-mult).to_integral_value())


def wchamax_fixed_w(value_w: Any, max_charge_w: float | None) -> int:
    """W charge limit -> opModFixedW: signed hundredths of % of setMaxChargeRateW, negative."""
    if isinstance(value_w, bool) or not isinstance(value_w, int | float):
        raise ControlError("invalid_payload", "value: expected a number of watts")
    if not _finite(value_w):
        raise ControlError("invalid_payload", "value: NaN/Infinity is not a number of watts")
    if max_charge_w is None:
        raise ControlError(
            "device_error",
            "WChaMax: the device has not reported DERSettings.setMaxChargeRateW yet, so the "
            "setpoint cannot be expressed as opModFixedW (% of that rating); not guessing",
        )
    if max_charge_w <= 0:
        raise ControlError("device_error", f"WChaMax: device setMaxChargeRateW is {max_charge_w}")
    if value_w < 0 or value_w > max_charge_w:
        raise ControlError(
            "out_of_range",
            f"value: {value_w} W outside 0..{max_charge_w} W (device setMaxChargeRateW)",
        )
    return -round(value_w / max_charge_w * 10000)


@dataclass(frozen=True)
class Limits:
    """Ratings the device reported; None = not known (then only %-based checks apply)."""

    max_w: float | None = None
    max_charge_w: float | None = None


def _int(body: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not _finite(v):
        raise ControlError("invalid_payload", f"{key}: expected an integer")
    if v != int(v):
        raise ControlError("invalid_payload", f"{key}: expected an integer, got {v}")
    if not lo <= v <= hi:
        raise ControlError("out_of_range", f"{key}: {v} outside {lo}..{hi}")
    return int(v)


def _bool(body: dict[str, Any], key: str) -> bool | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, bool):
        raise ControlError("invalid_payload", f"{key}: expected true or false")
    return v


def _watts(body: dict[str, Any], key: str, limits: Limits) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not _finite(v):
        raise ControlError("invalid_payload", f"{key}: expected a number (W)")
    if limits.max_w is not None and v > limits.max_w:
        raise ControlError("out_of_range", f"{key}: {v} W above setMaxW {limits.max_w}")
    if limits.max_charge_w is not None and v < -limits.max_charge_w:
        raise ControlError(
            "out_of_range", f"{key}: {v} W beyond -setMaxChargeRateW {limits.max_charge_w}"
        )
    if abs(v) > INT16 * 10**9:
        raise ControlError("out_of_range", f"{key}: {v} is not representable")
    return float(v)


DOE_KEYS = ("opModExpLimW", "opModImpLimW", "opModGenLimW", "opModLoadLimW")  # CSIP-AUS, W >= 0
BASE_KEYS = ("opModConnect", "opModEnergize", "opModFixedW", "opModMaxLimW", "opModTargetW",
             "opModTargetVar", "rampTms", *DOE_KEYS)  # fmt: skip
DEFAULT_KEYS = (*BASE_KEYS, "setGradW")  # DefaultDERControl: DERControlBase + setGradW
EVENT_KEYS = ("start", "duration", "randomizeStart", "randomizeDuration", "primacy", "description")


def parse_base(body: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """The DERControlBase fields of a JSON body, validated; unknown keys are the caller's job."""
    base: dict[str, Any] = {}
    for key in ("opModConnect", "opModEnergize"):
        b = _bool(body, key)
        if b is not None:
            base[key] = b
    fixed = _int(body, "opModFixedW", -10000, 10000)
    if fixed is not None:
        base["opModFixedW"] = fixed
    maxlim = _int(body, "opModMaxLimW", 0, 10000)
    if maxlim is not None:
        base["opModMaxLimW"] = maxlim
    for key in ("opModTargetW", "opModTargetVar"):
        w = _watts(body, key, limits if key == "opModTargetW" else Limits())
        if w is not None:
            base[key] = w
    ramp = _int(body, "rampTms", 0, 65535)
    if ramp is not None:
        base["rampTms"] = ramp
    for key in DOE_KEYS:
        w = _watts(body, key, Limits())
        if w is not None:
            if w < 0:
                raise ControlError("out_of_range", f"{key}: {w} W; a limit is 0 W or more")
            base[key] = w
    return base


def parse_default(body: dict[str, Any]) -> dict[str, Any]:
    """`set/dderc`: a JSON DefaultDERControl (DERControlBase fields and setGradW), validated."""
    unknown = sorted(set(body) - set(DEFAULT_KEYS))
    if unknown:
        raise ControlError(
            "invalid_payload", f"{unknown[0]}: unknown field (allowed: {', '.join(DEFAULT_KEYS)})"
        )
    out = parse_base(body, Limits())
    grad = _int(body, "setGradW", 0, 65535)  # hundredths of a percent of setMaxW per second
    if grad is not None:
        out["setGradW"] = grad
    return out


def parse_derc(
    body: dict[str, Any], now: float, default_primacy: int, limits: Limits, pen: int = 0
) -> Control:
    """A JSON DERControl (topics.md `set/derc`) -> Control. Raises ControlError."""
    unknown = sorted(set(body) - set(BASE_KEYS) - set(EVENT_KEYS))
    if unknown:
        raise ControlError(
            "invalid_payload",
            f"{unknown[0]}: unknown field (allowed: {', '.join(EVENT_KEYS + BASE_KEYS)})",
        )
    if "duration" not in body:
        raise ControlError("invalid_payload", "duration: required (seconds)")
    duration = _int(body, "duration", 1, 2**32 - 1)
    start = _int(body, "start", 0, 2**40)
    base = parse_base(body, limits)
    if not base:
        raise ControlError(
            "invalid_payload", f"DERControlBase: give at least one of {', '.join(BASE_KEYS)}"
        )
    desc = body.get("description")
    if desc is not None and (not isinstance(desc, str) or len(desc) > 32):
        raise ControlError("invalid_payload", "description: expected a string of at most 32 chars")
    primacy = _int(body, "primacy", 0, 255)
    assert duration is not None
    if (int(now) if start is None else start) + duration <= now:
        raise ControlError("out_of_range", "start + duration: the event would already be over")
    return Control(
        mrid=new_mrid(pen),
        creation_time=int(now),
        start=int(now) if start is None else start,
        duration=duration,
        base=base,
        primacy=default_primacy if primacy is None else primacy,
        randomize_start=_int(body, "randomizeStart", -3600, 3600),
        randomize_duration=_int(body, "randomizeDuration", -3600, 3600),
        description=desc,
    )
