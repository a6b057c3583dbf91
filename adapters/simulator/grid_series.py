"""`--grid grid.csv` of the backtest: `time,volts,hertz` rows, in the same time styles and
with the same refusals as the load and PV series (adapters.simulator.series)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from adapters.simulator.series import Series, SeriesError, _time


def _number(text: str, what: str, lo: float, hi: float) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r}: not a number") from None
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{what} {text!r}: must lie in {lo:g}..{hi:g}")
    return v


def read_grid(path: str | Path) -> tuple[Series, Series]:
    """(voltage series, frequency series) from a `time,volts,hertz` CSV."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SeriesError(name, None, f"cannot read: {exc}") from None
    times: list[float] = []
    volts: list[float] = []
    hertz: list[float] = []
    absolute: bool | None = None
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [c.strip() for c in row]
        if not cells or cells == [""] or cells[0].startswith("#"):
            continue
        if len(cells) != 3:
            raise SeriesError(
                name, lineno, f"expected 3 columns (time,volts,hertz), got {len(cells)}"
            )
        try:
            t, abs_t = _time(cells[0])
            v = _number(cells[1], "voltage", 0, 1e5)
            hz = _number(cells[2], "frequency", 40, 70)
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
        volts.append(v)
        hertz.append(hz)
    if not times:
        raise SeriesError(name, None, "no data rows")
    return Series(name, times, volts, bool(absolute)), Series(name, times, hertz, bool(absolute))
