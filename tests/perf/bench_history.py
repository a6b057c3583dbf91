"""Benchmark: the history database. SQLite inserts/s through HistoryStore (batched, WAL) against
bare sqlite3 inserts of the same rows in the same run; the size of a day of history at 1 s
(and of that day once folded into 1 min rows); the time to export a day as CSV.

    .venv/bin/python -m tests.perf.bench_history [SERIES]
"""

from __future__ import annotations

import io
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from edge.history.export import export_csv
from edge.history.store import HistoryStore, Sample

T0 = 1_764_547_200
BATCH_S = 1  # the recorder's default flush: one transaction per second


def bare_inserts(path: Path, series: int, seconds: int) -> float:
    """Baseline: plain sqlite3, one rowid table, the same rows and transactions."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE s (series INTEGER, t INTEGER, v REAL)")
    t = time.perf_counter()
    for s0 in range(0, seconds, BATCH_S):
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO s VALUES (?, ?, ?)",
            [(k, T0 + s, float(s)) for s in range(s0, s0 + BATCH_S) for k in range(series)],
        )
        db.execute("COMMIT")
    el = time.perf_counter() - t
    db.close()
    return series * seconds / el


def store_inserts(store: HistoryStore, series: int, seconds: int, t_start: int) -> float:
    keys = [f"dev{k // 20}/701/P{k % 20}" for k in range(series)]
    t = time.perf_counter()
    for s0 in range(0, seconds, BATCH_S):
        store.write(
            [
                Sample(keys[k], t_start + s, float(s % 3600))
                for s in range(s0, s0 + BATCH_S)
                for k in range(series)
            ]
        )
    return series * seconds / (time.perf_counter() - t)


def main(series: int = 10) -> None:
    with tempfile.TemporaryDirectory() as d:
        rate_bare = bare_inserts(Path(d) / "bare.sqlite", series, 600)
        store = HistoryStore(Path(d) / "h.sqlite")
        rate_store = store_inserts(store, series, 600, T0)
        print(f"inserts/s, {series} series, one transaction per {BATCH_S} s of data:")
        print(f"  bare sqlite3 (rowid table, no WAL) {rate_bare:12,.0f}")
        print(f"  HistoryStore (WAL, WITHOUT ROWID)  {rate_store:12,.0f}")
        # a whole day at 1 s for every series (the worst case: every value changes every s)
        t = time.perf_counter()
        store_inserts(store, series, 86400 - 600, T0 + 600)
        day_s = time.perf_counter() - t
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        day = store.file_bytes()
        rows = store.counts()["s1"]
        print(
            f"a day at 1 s, {series} series: {rows:,} rows in {day / 1e6:.1f} MB "
            f"({day / rows:.1f} B/row; 40 series: ~{day * 40 / series / 1e6:.0f} MB), "
            f"written in {day_s:.1f} s (one core: {day_s / 864:.3f} % of real time)"
        )
        out = io.StringIO()
        t = time.perf_counter()
        n = export_csv(
            store,
            [(f"p{k}", (f"dev0/701/P{k}",)) for k in range(5)],
            T0,
            T0 + 86400,
            out,
        )
        print(f"export a day, 5 points at 1 s: {n:,} rows in {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        store.compact(T0 + 2 * 86400, 86400, 30 * 86400, 30 * 86400)
        print(
            f"folded into 1 min rows: {store.counts()['m1']:,} rows, "
            f"{store.file_bytes() / 1e6:.2f} MB (a month: ~{30 * store.file_bytes() / 1e6:.0f} MB)"
            f", compaction {time.perf_counter() - t:.1f} s"
        )
        store.close()
        print(f"pid {os.getpid()} peak RSS {_rss_mb():.0f} MB")


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
