"""A power cut in the middle of a write must not corrupt the history: the writer (the store
alone, then the real `bess-edge recorder` on a live broker) is SIGKILLed mid-batch, and the
database reopens intact with every batch either whole or absent."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.history.store import HistoryStore
from tests.broker import Broker
from tests.integration.history_writer import SECONDS, SERIES
from tests.mqtt_probe import Probe

pytestmark = pytest.mark.slow
BESS_EDGE = str(Path(sys.executable).with_name("bess-edge"))


def _kill_after_commits(path: Path, first: int, commits: int, rng: random.Random) -> list[int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.history_writer", str(path), str(first)],
        stdout=subprocess.PIPE,
        text=True,
    )
    done: list[int] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while len(done) < commits and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("committed"):
            done.append(int(line.split()[1]))
    time.sleep(rng.uniform(0.0, 0.02))  # somewhere inside the next batch
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    done.extend(int(line.split()[1]) for line in proc.stdout if line.startswith("committed"))
    return done


def test_killed_writer_leaves_whole_batches(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    rng = random.Random(13)
    committed: list[int] = []
    first = 0
    for _ in range(4):
        committed += _kill_after_commits(path, first, rng.randint(3, 8), rng)
        s = HistoryStore(path)
        try:
            assert s.integrity() == "ok"
            per_batch = dict(s.db.execute("SELECT v, count(*) FROM s1 GROUP BY v").fetchall())
        finally:
            s.close()
        assert all(n == SERIES * SECONDS for n in per_batch.values()), per_batch  # no half batch
        assert set(committed) <= {int(v) for v in per_batch}  # nothing acknowledged was lost
        first = int(max(per_batch)) + 1


def _has_rows(db: Path, at_least: float) -> bool:
    if not db.exists():
        return False
    s = HistoryStore(db)
    try:
        top = s.db.execute("SELECT max(v) FROM s1").fetchone()[0]
    finally:
        s.close()
    return top is not None and top >= at_least


def test_killed_recorder_reopens_and_goes_on(tmp_path: Path, broker: Broker) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        f'[site]\nid = "k1"\n[broker]\nhost = "{broker.host}"\nport = {broker.port}\n'
        '[history]\npath = "h.sqlite"\nflush_s = 0.1\n'
    )
    db = tmp_path / "h.sqlite"
    pub = Probe(broker.host, broker.port)
    try:
        for round_ in range(2):
            rec = subprocess.Popen([BESS_EDGE, "recorder", "-c", str(site)])
            try:
                n = 0
                end = time.monotonic() + 20.0
                while time.monotonic() < end:  # telemetry at full rate: 200 points per 10 ms
                    for k in range(200):
                        pub.publish(f"bess/k1/dev/701/P{k}", str(n + round_ * 1e6), qos=0)
                    n += 1
                    time.sleep(0.01)
                    if n % 50 == 0 and _has_rows(db, round_ * 1e6):  # the recorder is writing
                        end = min(end, time.monotonic() + 2.0)
            finally:
                rec.send_signal(signal.SIGKILL)
                rec.wait(10)
            s = HistoryStore(db)
            try:
                assert s.integrity() == "ok"
                rows = s.counts()["s1"]
                top = s.db.execute("SELECT max(v) FROM s1").fetchone()[0]
            finally:
                s.close()
            assert rows >= 400, rows  # 1 s per series and row: 2 s or more of 200 series
            assert top >= round_ * 1e6  # the restarted recorder wrote into the same file
    finally:
        pub.close()
