"""Power time series from CSV files (site load, PV) for the backtest.

Format: two columns, `time,watts`, an optional header line first. `time` is either an
ISO-8601 timestamp with a UTC offset (`2026-12-02T00:15:00+00:00`, `...Z`) or seconds from
the start (a number); one style per file. Each value holds until the next row (interval
data), the last one for as long as the interval before it. Blank lines and lines starting
with `#` are skipped. Anything else that is not a valid row is refused with its line number.
"""

from __future__ import annotations

import bisect
import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


class SeriesError(ValueError):
    """A CSV that cannot be used: `str()` is `path:line: reason`."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Series:
    """Interval values: `values[i]` holds from `times[i]` to `times[i + 1]`."""

    path: str
    times: list[float]  # unix seconds (absolute) or seconds from the start
    values: list[float]  # W
    absolute: bool  # True: ISO timestamps

    @property
    def start(self) -> float:
        return self.times[0]

    @property
    def end(self) -> float:
        """Where the data stops: the last row lasts as long as the interval before it."""
        if len(self.times) == 1:
            return self.times[0]
        return self.times[-1] + (self.times[-1] - self.times[-2])

    def at(self, t: float) -> float:
        i = bisect.bisect_right(self.times, t) - 1
        return self.values[max(0, i)]

    def check_covers(self, start: float, end: float) -> None:
        """Refuse a series that does not span [start, end)."""
        if self.start > start or self.end < end:
            raise SeriesError(
                self.path,
                None,
                f"covers {_span(self.start, self.end, self.absolute)}, the backtest needs "
                f"{_span(start, end, self.absolute)} ({(end - start) / 3600:g} h)",
            )


def _span(a: float, b: float, absolute: bool) -> str:
    if absolute:
        return f"{_iso(a)} .. {_iso(b)}"
    return f"{a:g} s .. {b:g} s"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _time(text: str) -> tuple[float, bool]:
    """(seconds, absolute) of a time field; ValueError with the reason otherwise."""
    try:
        v = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"time {text!r}: seconds must be a finite number >= 0")
        return v, False
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"time {text!r}: expected ISO-8601 with a UTC offset or seconds from the start"
        ) from None
    if dt.tzinfo is None:
        raise ValueError(f"time {text!r}: needs a UTC offset (e.g. +00:00 or Z)")
    return dt.timestamp(), True


def _number(text: str, what: str, lo: float, hi: float) -> float:
    """A finite number within [lo, hi]; ValueError naming `what` and the reason otherwise."""
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r}: not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"{what} {text!r}: must be a finite number")
    if not lo <= v <= hi:
        raise ValueError(f"{what} {text!r}: must lie in {lo:g}..{hi:g}")
    return v


def _watts(text: str) -> float:
    v = _number(text, "power", -math.inf, math.inf)
    if v < 0:
        raise ValueError(f"power {text!r}: must be >= 0 W")
    return v


Column = Callable[[str], float]


def read_columns(
    path: str | Path, names: tuple[str, ...], columns: tuple[Column, ...]
) -> tuple[str, list[float], list[list[float]], bool]:
    """The one CSV reader of the backtest's series: `time` then one cell per converter.

    Returns (path, times, one value list per column, absolute). SeriesError names the line
    and the reason for every row that is not valid; a first line that does not parse is the
    header."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SeriesError(name, None, f"cannot read: {exc}") from None
    times: list[float] = []
    values: list[list[float]] = [[] for _ in columns]
    absolute: bool | None = None
    width = 1 + len(columns)
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [c.strip() for c in row]
        if not cells or cells == [""] or cells[0].startswith("#"):
            continue
        if len(cells) != width:
            raise SeriesError(
                name, lineno, f"expected {width} columns ({','.join(names)}), got {len(cells)}"
            )
        try:
            t, abs_t = _time(cells[0])
            row_values = [conv(cell) for conv, cell in zip(columns, cells[1:], strict=True)]
        except ValueError as exc:
            if lineno == 1:
                continue  # the header line
            raise SeriesError(name, lineno, str(exc)) from None
        if absolute is not None and abs_t != absolute:
            raise SeriesError(
                name, lineno, "mixes ISO timestamps and seconds: use one style per file"
            )
        absolute = abs_t
        if times and t <= times[-1]:
            raise SeriesError(name, lineno, f"time {cells[0]!r} is not after the row before")
        times.append(t)
        for column, v in zip(values, row_values, strict=True):
            column.append(v)
    if not times:
        raise SeriesError(name, None, "no data rows")
    return name, times, values, bool(absolute)


def read_series(path: str | Path) -> Series:
    """Read a `time,watts` CSV; SeriesError names the line and the reason."""
    name, times, (watts,), absolute = read_columns(path, ("time", "watts"), (_watts,))
    return Series(name, times, watts, absolute)
