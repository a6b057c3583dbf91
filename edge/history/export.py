"""`bess-edge history export`: recorded series as CSV on a regular time grid, the input of
the operating-modes backtest (replay a mode on a real recorded day).

One row per `--step` seconds from `--from` (inclusive) to `--to` (exclusive); column `ts` is
Unix seconds, then one column per point. A point published by exception keeps its last value
for up to `--fill` seconds; past that the cell is empty (no data is not a value).
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


def parse_points(text: str) -> list[tuple[str, str]]:
    """`a,b` or `name=a,...` -> [(column, series key)]."""
    out: list[tuple[str, str]] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        col, _, key = item.partition("=") if "=" in item else (item, "", item)
        if not col or not key:
            raise ExportError(f"--points: {item!r} must be KEY or NAME=KEY")
        out.append((col, key))
    if not out:
        raise ExportError("--points: give at least one series key")
    return out


def export_csv(
    store: HistoryStore,
    points: Sequence[tuple[str, str]],
    t0: float,
    t1: float,
    out: IO[str],
    step: int = 1,
    fill_s: float = 60.0,
) -> int:
    """Write the CSV; returns the number of data rows."""
    if t1 <= t0:
        raise ExportError("--to: must be after --from")
    if step < 1:
        raise ExportError("--step: must be at least 1 s")
    known = set(store.keys())
    missing = [k for _, k in points if k not in known]
    if missing:
        raise ExportError(f"--points: no recorded series {missing[0]!r} (see --list)")
    start, end = int(t0) // step * step, int(t1)
    # the last value before the window starts, so the first rows are not empty
    series = [dict(store.buckets(k, start - int(fill_s) - step, end, step)) for _, k in points]
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["ts", *(c for c, _ in points)])
    last: list[tuple[int, float] | None] = [None] * len(points)
    for s in range(len(points)):
        before = [t for t in series[s] if t < start]
        if before:
            last[s] = (max(before), series[s][max(before)])
    rows = 0
    for t in range(start, end, step):
        cells: list[Any] = [t]
        for s, values in enumerate(series):
            v = values.get(t)
            if v is not None:
                last[s] = (t, v)
            held = last[s]
            cells.append("" if held is None or t - held[0] > fill_s else f"{held[1]:.6g}")
        w.writerow(cells)
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
    e.add_argument("--points", help="comma-separated series keys, or NAME=KEY")
    e.add_argument("--step", type=int, default=1, help="seconds per row (default 1)")
    e.add_argument("--fill", type=float, default=60.0, help="hold a value this long (s)")
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
            )
        finally:
            store.close()
    except ExportError as exc:
        print(f"bess-edge history export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0
