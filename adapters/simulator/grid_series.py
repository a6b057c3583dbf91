"""`--grid grid.csv` of the backtest: `time,volts,hertz` rows, in the same time styles and
with the same refusals as the load and PV series (adapters.simulator.series)."""

from __future__ import annotations

from pathlib import Path

from adapters.simulator.series import Series, _number, read_columns


def _volts(text: str) -> float:
    return _number(text, "voltage", 0, 1e5)


def _hertz(text: str) -> float:
    return _number(text, "frequency", 40, 70)


def read_grid(path: str | Path) -> tuple[Series, Series]:
    """(voltage series, frequency series) from a `time,volts,hertz` CSV."""
    name, times, (volts, hertz), absolute = read_columns(
        path, ("time", "volts", "hertz"), (_volts, _hertz)
    )
    return Series(name, times, volts, absolute), Series(name, times, hertz, absolute)
