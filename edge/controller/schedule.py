"""The schedule: which mode runs when, by weekly time windows in the site's time zone.

A window names its days (`daily`, `weekdays`, `weekends` or a list of `mon`..`sun`), a start and
an end as local wall-clock `HH:MM` (an end at or before the start runs past midnight; `24:00`
ends at midnight), and a mode with its params. Windows follow the wall clock, so a window on a
day that springs forward is an hour shorter. `default` runs outside every window; without one
the windows must cover the whole week. An overlap, or a gap with no default, is an error naming
the windows. Pure: `active(unix_s)` is a table lookup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge.controller.errors import Refused, short
from edge.controller.modes.registry import validate_params

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_SETS = {"daily": DAYS, "weekdays": DAYS[:5], "weekends": DAYS[5:]}
WEEK = 7 * 1440
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


@dataclass(frozen=True)
class Entry:
    """One mode with its validated params; `window` names where it came from."""

    mode: str
    params: dict[str, Any]
    window: str


@dataclass(frozen=True)
class Schedule:
    tz: str
    default: Entry | None
    windows: tuple[tuple[str, tuple[str, ...], int, int, Entry], ...]  # name, days, start, end
    raw: dict[str, Any] = field(compare=False)
    # minute of the week -> the window's Entry, as sorted (start, end, entry) spans
    _spans: tuple[tuple[int, int, Entry], ...] = field(default=(), compare=False)

    def active(self, unix_s: float) -> Entry | None:
        """The entry in force at `unix_s` (None: no window and no default)."""
        local = datetime.fromtimestamp(unix_s, ZoneInfo(self.tz))
        minute = local.weekday() * 1440 + local.hour * 60 + local.minute
        for start, end, entry in self._spans:
            if start <= minute < end:
                return entry
        return self.default


def _fmt(minute: int) -> str:
    day, m = divmod(minute % WEEK, 1440)
    return f"{DAYS[day]} {m // 60:02d}:{m % 60:02d}"


def _minutes(where: str, key: str, value: Any) -> int:
    if not isinstance(value, str) or not _HHMM.match(value):
        raise Refused("invalid_payload", f"{where}.{key}: expected 'HH:MM', got {short(value)}")
    h, m = value.split(":")
    return int(h) * 60 + int(m)


def _days(where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) and value in DAY_SETS:
        return DAY_SETS[value]
    if isinstance(value, list) and value and all(isinstance(d, str) for d in value):
        bad = [d for d in value if d not in DAYS]
        if bad:
            raise Refused("invalid_payload", f"{where}.days: unknown day {short(bad[0])}")
        if len(set(value)) != len(value):
            raise Refused("invalid_payload", f"{where}.days: a day is listed twice")
        return tuple(d for d in DAYS if d in value)
    raise Refused(
        "invalid_payload",
        f"{where}.days: expected daily, weekdays, weekends or a list of {', '.join(DAYS)}",
    )


def _entry(where: str, body: Any, window: str, extra: set[str]) -> Entry:
    if not isinstance(body, Mapping):
        raise Refused("invalid_payload", f"{where}: expected an object")
    unknown = sorted(set(body) - {"mode", "params"} - extra)
    if unknown:
        raise Refused("invalid_payload", f"{where}: unknown field {unknown[0]!r}")
    if "mode" not in body:
        raise Refused("invalid_payload", f"{where}.mode: missing")
    try:
        params = validate_params(body["mode"], body.get("params"))
    except Refused as r:
        raise Refused(r.code, f"{where}.{r.message}") from None
    return Entry(body["mode"], params, window)


def parse_schedule(body: Any, tz: str) -> Schedule:
    """A validated Schedule, or Refused naming the field (`schedule.windows[1].start`)."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise Refused("out_of_range", f"tz: unknown time zone {short(tz)}") from None
    if not isinstance(body, Mapping):
        raise Refused("invalid_payload", "schedule: expected an object")
    unknown = sorted(set(body) - {"default", "windows"})
    if unknown:
        raise Refused("invalid_payload", f"schedule: unknown field {unknown[0]!r}")
    default = None
    if body.get("default") is not None:
        default = _entry("schedule.default", body["default"], "default", set())
    raw_windows = body.get("windows", [])
    if not isinstance(raw_windows, list):
        raise Refused("invalid_payload", "schedule.windows: expected a list")
    windows = []
    spans: list[tuple[int, int, Entry]] = []
    names: set[str] = set()
    for i, w in enumerate(raw_windows):
        where = f"schedule.windows[{i}]"
        if not isinstance(w, Mapping):
            raise Refused("invalid_payload", f"{where}: expected an object")
        name = w.get("name", f"windows[{i}]")
        if not isinstance(name, str) or not name or name in names:
            raise Refused("invalid_payload", f"{where}.name: expected a unique non-empty string")
        names.add(name)
        days = _days(where, w.get("days", "daily"))
        start = _minutes(where, "start", w.get("start"))
        end = _minutes(where, "end", w.get("end"))
        if start == 24 * 60:
            raise Refused("out_of_range", f"{where}.start: 24:00 is the end of a day")
        if end == start:
            raise Refused("out_of_range", f"{where}: start and end are both {w.get('start')}")
        length = end - start if end > start else end + 1440 - start
        entry = _entry(where, {k: w[k] for k in ("mode", "params") if k in w}, name, set())
        extra = sorted(set(w) - {"name", "days", "start", "end", "mode", "params"})
        if extra:
            raise Refused("invalid_payload", f"{where}: unknown field {extra[0]!r}")
        windows.append((name, days, start, end, entry))
        for d in days:
            s = DAYS.index(d) * 1440 + start
            e = s + length
            if e <= WEEK:
                spans.append((s, e, entry))
            else:  # sunday night into monday morning
                spans.extend([(s, WEEK, entry), (0, e - WEEK, entry)])
    spans.sort(key=lambda t: t[0])
    for (_s1, e1, a), (s2, _e2, b) in pairwise(spans):
        if s2 < e1:
            raise Refused(
                "out_of_range",
                f"schedule: windows {a.window!r} and {b.window!r} overlap at {_fmt(s2)}",
            )
    if default is None:
        _check_coverage(spans)
    return Schedule(tz, default, tuple(windows), dict(body), tuple(spans))


def _check_coverage(spans: list[tuple[int, int, Entry]]) -> None:
    """Without a default, every minute of the week must be in a window."""
    if not spans:
        raise Refused("invalid_payload", "schedule: no default and no windows")
    at = 0
    prev = spans[-1][2].window  # the week wraps around
    for s, e, entry in spans:
        if s > at:
            raise Refused(
                "out_of_range",
                f"schedule: gap {_fmt(at)}-{_fmt(s)} between windows {prev!r} and "
                f"{entry.window!r} and no default",
            )
        at, prev = max(at, e), entry.window
    if at < WEEK:
        raise Refused(
            "out_of_range",
            f"schedule: gap {_fmt(at)}-{_fmt(WEEK)} between windows {prev!r} and "
            f"{spans[0][2].window!r} and no default",
        )
