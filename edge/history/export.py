"""`bess-edge history export`: recorded series as CSV on a regular time grid, the input of
the operating-modes backtest (replay a mode on a real recorded day).

One row per `--step` seconds from `--from` (inclusive) to `--to` (exclusive); column `ts` is
Unix seconds (or `time`, ISO-8601 UTC, with `--time iso`), then one column per point, or per
sum of points (a site's load is `grid + pv + battery`). A point published by exception keeps
its last value for up to `--fill` seconds; past that the cell is empty (no data is not a
value), or the row is left out with `--skip-empty`. `--time iso --skip-empty` with one column
is the backtest's `time,watts` format.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import IO, Any

from edge.config import ConfigError, load_site
from edge.history.config import database_path
from edge.history.store import HistoryStore

EXIT_USAGE = 2


class ExportError(ValueError):
    """A bad option: the message names it."""


def parse_time(option: str, text: str) -> float:
    """Unix seconds, an ISO-8601 time with an offset, or a date (midnight UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ExportError(
            f"{option}: {text!r} is not a time (ISO-8601 with offset, a date, or Unix seconds)"
        ) from None
    if dt.tzinfo is None:
        if len(text) > 10:
            raise ExportError(f"{option}: {text!r} has no UTC offset (add +00:00 or Z)")
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def parse_points(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """`a,b`, `name=a` or `name=a+b` (a sum, e.g. a site's load) -> [(column, keys)]."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        col, _, expr = item.partition("=") if "=" in item else (item, "", item)
        keys = tuple(k.strip() for k in expr.split("+"))
        if not col or not all(keys):
            raise ExportError(f"--points: {item!r} must be KEY, NAME=KEY or NAME=KEY+KEY...")
        out.append((col, keys))
    if not out:
        raise ExportError("--points: give at least one series key")
    return out


def export_csv(
    store: HistoryStore,
    points: Sequence[tuple[str, tuple[str, ...]]],
    t0: float,
    t1: float,
    out: IO[str],
    step: int = 1,
    fill_s: float = 60.0,
    iso: bool = False,
    skip_empty: bool = False,
) -> int:
    """Write the CSV; returns the number of data rows. A sum is empty unless all its parts
    are known. `iso`: times as ISO-8601 UTC (column `time`) instead of Unix s (`ts`).
    `skip_empty`: leave out rows with an empty cell (the backtest holds the row before)."""
    if t1 <= t0:
        raise ExportError("--to: must be after --from")
    if step < 1:
        raise ExportError("--step: must be at least 1 s")
    keys = sorted({k for _, ks in points for k in ks})
    missing = [k for k in keys if k not in set(store.keys())]
    if missing:
        raise ExportError(f"--points: no recorded series {missing[0]!r} (see --list)")
    start, end = int(t0) // step * step, int(t1)
    # from before the window, so a held value fills the first rows
    series = {k: dict(store.buckets(k, start - int(fill_s) - step, end, step)) for k in keys}
    last: dict[str, tuple[int, float]] = {}
    for k, values in series.items():
        before = [t for t in values if t < start]
        if before:
            last[k] = (max(before), values[max(before)])
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["time" if iso else "ts", *(c for c, _ in points)])
    rows = 0
    for t in range(start, end, step):
        now: dict[str, float | None] = {}
        for k, values in series.items():
            v = values.get(t)
            if v is not None:
                last[k] = (t, v)
            held = last.get(k)
            now[k] = None if held is None or t - held[0] > fill_s else held[1]
        cells: list[Any] = []
        for _, ks in points:
            parts = [now[k] for k in ks]
            cells.append("" if None in parts else f"{sum(p for p in parts if p is not None):.6g}")
        if skip_empty and "" in cells:
            continue
        stamp = datetime.fromtimestamp(t, UTC).isoformat() if iso else t
        w.writerow([stamp, *cells])
        rows += 1
    return rows


def register(sub: Any) -> None:
    """Entry point `bess_edge.commands: history`."""
    p = sub.add_parser("history", help="the gateway's history database")
    hsub = p.add_subparsers(dest="history_command", required=True)
    e = hsub.add_parser("export", help="recorded series as CSV on stdout")
    e.add_argument("-c", "--config", help="site file; its [history] path is read")
    e.add_argument("--db", help="database file (instead of the site file's [history] path)")
    e.add_argument("--from", dest="t_from", help="start (ISO-8601 with offset, date, Unix s)")
    e.add_argument("--to", dest="t_to", help="end, exclusive")
    e.add_argument("--points", help="comma-separated KEY, NAME=KEY or NAME=KEY+KEY (a sum)")
    e.add_argument("--step", type=int, default=1, help="seconds per row (default 1)")
    e.add_argument("--fill", type=float, default=60.0, help="hold a value this long (s)")
    e.add_argument(
        "--time", choices=("unix", "iso"), default="unix", help="Unix s (ts) or ISO-8601 UTC"
    )
    e.add_argument("--skip-empty", action="store_true", help="leave out rows with a gap")
    e.add_argument("--list", action="store_true", help="list the recorded series and exit")
    e.set_defaults(func=_cmd_export)


def _db_path(args: argparse.Namespace) -> str:
    if args.db:
        return str(args.db)
    if not args.config:
        raise ExportError("-c/--config or --db: say which database to read")
    path = database_path(load_site(args.config))
    if path is None:
        raise ConfigError(args.config, [("history", "no [history] section in the site file")])
    return str(path)


def _cmd_export(args: argparse.Namespace) -> int:
    try:
        store = HistoryStore(_db_path(args))
        try:
            if args.list:
                print("\n".join(store.keys()))
                return 0
            if not args.t_from or not args.t_to or not args.points:
                raise ExportError("--from, --to and --points are required")
            export_csv(
                store,
                parse_points(args.points),
                parse_time("--from", args.t_from),
                parse_time("--to", args.t_to),
                sys.stdout,
                step=args.step,
                fill_s=args.fill,
                iso=args.time == "iso",
                skip_empty=args.skip_empty,
            )
        finally:
            store.close()
    except ExportError as exc:
        print(f"bess-edge history export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0
