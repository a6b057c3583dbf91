"""The history database: SQLite in WAL mode, written in batches, downsampled and bounded.

Tables: `series` (key -> id), `s1` (one value per series and second, the recent tier), `m1`
(per-minute mean/min/max/count, the old tier), `events` (controller events, state changes,
device status changes, operator commands). A batch is one transaction, so a crash or power
loss leaves either the whole batch or none of it; WAL with `synchronous=NORMAL` never leaves
a corrupt file. Not thread-safe: one writer (the recorder) per connection; readers open their
own connection (WAL lets them read while the recorder writes).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS s1 (
    series INTEGER NOT NULL, t INTEGER NOT NULL, v REAL NOT NULL,
    PRIMARY KEY (series, t)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS m1 (
    series INTEGER NOT NULL, t INTEGER NOT NULL, v REAL NOT NULL, lo REAL NOT NULL,
    hi REAL NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (series, t)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, t REAL NOT NULL, source TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_t ON events (t);
"""
WAL_LIMIT_BYTES = 4 * 1024 * 1024
BOUND_TARGET = 0.85  # when over the bound, trim to this fraction of it


@dataclass(frozen=True)
class Sample:
    key: str  # e.g. "battery/802/SoC", "controller/soc"
    t: float  # unix seconds
    v: float


@dataclass(frozen=True)
class Event:
    t: float
    source: str  # "controller", "controller/state", "battery/status", "view", ...
    body: dict[str, Any]


class HistoryStore:
    """`HistoryStore(path)`; `write(samples, events)` per batch; `compact(now)` now and then."""

    def __init__(self, path: str | Path, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.db = sqlite3.connect(
            self.path, isolation_level=None, timeout=10.0, check_same_thread=False
        )
        # auto_vacuum must be chosen before the first table exists; harmless afterwards
        self.db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
        self.db.executescript(SCHEMA)
        self._ids: dict[str, int] = dict(
            (k, i) for i, k in self.db.execute("SELECT id, key FROM series")
        )

    def close(self) -> None:
        self.db.close()

    # -- writing ---------------------------------------------------------------------------
    def _series_id(self, key: str) -> int:
        sid = self._ids.get(key)
        if sid is None:
            cur = self.db.execute("INSERT INTO series (key) VALUES (?)", (key,))
            sid = int(cur.lastrowid or 0)
            self._ids[key] = sid
        return sid

    def write(self, samples: Iterable[Sample], events: Iterable[Event] = ()) -> int:
        """One transaction. Samples within one second of a series: the last one wins."""
        rows = 0
        self.db.execute("BEGIN IMMEDIATE")
        try:
            srows = [(self._series_id(s.key), int(s.t), float(s.v)) for s in samples]
            self.db.executemany("INSERT OR REPLACE INTO s1 (series, t, v) VALUES (?, ?, ?)", srows)
            erows = [(e.t, e.source, json.dumps(e.body, allow_nan=False)) for e in events]
            self.db.executemany("INSERT INTO events (t, source, body) VALUES (?, ?, ?)", erows)
            self.db.execute("COMMIT")
            rows = len(srows) + len(erows)
        except BaseException:
            self._ids = dict((k, i) for i, k in self.db.execute("SELECT id, key FROM series"))
            self.db.execute("ROLLBACK")
            raise
        return rows

    # -- downsampling and retention --------------------------------------------------------
    def compact(self, now: float, raw_keep_s: int, minute_keep_s: int, events_keep_s: int) -> None:
        """Fold 1 s samples older than `raw_keep_s` into 1 min rows, drop what is past its
        retention, then trim the oldest data while the file is over `max_bytes`."""
        cut_raw = int(now - raw_keep_s) // 60 * 60
        cut_min = int(now - minute_keep_s)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for sid in list(self._ids.values()):
                self.db.execute(
                    """INSERT INTO m1 (series, t, v, lo, hi, n)
                       SELECT series, t / 60 * 60, avg(v), min(v), max(v), count(*)
                       FROM s1 WHERE series = ? AND t < ? GROUP BY t / 60
                       ON CONFLICT (series, t) DO UPDATE SET
                         v = (m1.v * m1.n + excluded.v * excluded.n) / (m1.n + excluded.n),
                         lo = min(m1.lo, excluded.lo), hi = max(m1.hi, excluded.hi),
                         n = m1.n + excluded.n""",
                    (sid, cut_raw),
                )
                self.db.execute("DELETE FROM s1 WHERE series = ? AND t < ?", (sid, cut_raw))
                self.db.execute("DELETE FROM m1 WHERE series = ? AND t < ?", (sid, cut_min))
            self.db.execute("DELETE FROM events WHERE t < ?", (now - events_keep_s,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self._reclaim()
        self.enforce_bound(now)

    def enforce_bound(self, now: float) -> None:
        """While the file is over `max_bytes`, drop the oldest tenth of what is stored."""
        if self.max_bytes is None:
            return
        for _ in range(30):
            if self.file_bytes() <= self.max_bytes * BOUND_TARGET:
                return
            oldest = self.oldest()
            if oldest is None:
                return
            cut = oldest + max(60.0, (now - oldest) * 0.1)
            self.db.execute("BEGIN IMMEDIATE")
            for sid in list(self._ids.values()):
                self.db.execute("DELETE FROM s1 WHERE series = ? AND t < ?", (sid, cut))
                self.db.execute("DELETE FROM m1 WHERE series = ? AND t < ?", (sid, cut))
            self.db.execute("DELETE FROM events WHERE t < ?", (cut,))
            self.db.execute("COMMIT")
            self._reclaim()

    def _reclaim(self) -> None:
        """Give freed pages back to the file system and keep the WAL short."""
        # executescript steps it to the end; execute() would free a single page
        self.db.executescript("PRAGMA incremental_vacuum;")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def oldest(self) -> float | None:
        ts = [
            r[0]
            for r in (
                self.db.execute("SELECT min(t) FROM s1").fetchone(),
                self.db.execute("SELECT min(t) FROM m1").fetchone(),
                self.db.execute("SELECT min(t) FROM events").fetchone(),
            )
            if r[0] is not None
        ]
        return float(min(ts)) if ts else None

    def file_bytes(self) -> int:
        """The database file plus its WAL, as the disk sees them."""
        total = 0
        for p in (self.path, Path(f"{self.path}-wal")):
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(p).st_size
        return total

    # -- reading ---------------------------------------------------------------------------
    def keys(self) -> list[str]:
        return sorted(self._ids)

    def buckets(self, key: str, t0: float, t1: float, step: int) -> list[tuple[int, float]]:
        """Mean per `step`-second bucket in [t0, t1), from both tiers; ordered by time."""
        sid = self._ids.get(key)
        if sid is None:  # a reader's cache may predate the series
            self._ids = dict((k, i) for i, k in self.db.execute("SELECT id, key FROM series"))
            sid = self._ids.get(key)
        if sid is None:
            return []
        step = max(1, int(step))
        a, b = int(t0), int(t1)
        rows = self.db.execute(
            """SELECT t / ? * ? AS bt, avg(v) FROM (
                 SELECT t, v FROM m1 WHERE series = ? AND t >= ? AND t < ?
                 UNION ALL
                 SELECT t, v FROM s1 WHERE series = ? AND t >= ? AND t < ?)
               GROUP BY bt ORDER BY bt""",
            (step, step, sid, a, b, sid, a, b),
        ).fetchall()
        return [(int(t), float(v)) for t, v in rows]

    def events(
        self, t0: float, t1: float, limit: int = 1000, sources: Sequence[str] | None = None
    ) -> list[Event]:
        sql = "SELECT t, source, body FROM events WHERE t >= ? AND t < ?"
        args: list[Any] = [t0, t1]
        if sources:
            sql += f" AND source IN ({','.join('?' * len(sources))})"
            args.extend(sources)
        sql += " ORDER BY t DESC LIMIT ?"
        args.append(limit)
        rows = self.db.execute(sql, args).fetchall()
        return [Event(t, s, json.loads(b)) for t, s, b in reversed(rows)]

    def counts(self) -> dict[str, int]:
        return {
            name: int(self.db.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
            for name in ("s1", "m1", "events")
        }

    def integrity(self) -> str:
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])
