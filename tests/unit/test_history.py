"""History: the SQLite store (batches, tiers, retention, disk bound), the recorder's reading of
the topic tree, and the CSV export, on real SQLite files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from edge.cli import main
from edge.history.config import HistoryConfig, HistorySchema
from edge.history.export import ExportError, export_csv, parse_points, parse_time
from edge.history.recorder import Recorder
from edge.history.store import Event, HistoryStore, Sample

T0 = 1_764_547_200  # 2025-12-01T00:00:00Z


def store(tmp_path: Path, **kw: int) -> HistoryStore:
    return HistoryStore(tmp_path / "h.sqlite", **kw)


def test_write_is_one_batch_and_last_value_in_a_second_wins(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.write([Sample("b/802/SoC", T0 + 0.1, 50.0), Sample("b/802/SoC", T0 + 0.9, 51.0)])
    s.write([Sample("b/802/SoC", T0 + 1.2, 52.0)], [Event(T0, "controller", {"kind": "x"})])
    assert s.buckets("b/802/SoC", T0, T0 + 10, 1) == [(T0, 51.0), (T0 + 1, 52.0)]
    assert [e.body for e in s.events(T0 - 1, T0 + 1)] == [{"kind": "x"}]
    assert s.integrity() == "ok"
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failed_batch_writes_nothing(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.write([Sample("a", T0, 1.0)])
    with pytest.raises(ValueError):  # NaN is not JSON: the whole batch is refused
        s.write([Sample("a", T0 + 1, 2.0)], [Event(T0, "x", {"v": float("nan")})])
    assert s.counts() == {"s1": 1, "m1": 0, "events": 0}


def test_compact_folds_old_seconds_into_minutes_and_drops_past_retention(tmp_path: Path) -> None:
    s = store(tmp_path)
    # two hours of 1 s data, values 0..59 repeating per minute
    s.write([Sample("w", T0 + i, float(i % 60)) for i in range(7200)])
    s.write([], [Event(T0, "controller", {"kind": "old"}), Event(T0 + 7000, "c", {"k": "new"})])
    now = T0 + 7200
    s.compact(now, raw_keep_s=3600, minute_keep_s=5400, events_keep_s=1000)
    c = s.counts()
    assert c["s1"] == 3600  # the last hour stays at 1 s
    # minutes older than 1 h folded; those older than 1.5 h dropped: 30 minute rows remain
    assert c["m1"] == 30
    row = s.db.execute("SELECT v, lo, hi, n FROM m1 ORDER BY t LIMIT 1").fetchone()
    assert row == (29.5, 0.0, 59.0, 60)
    assert [e.body for e in s.events(0, now + 1)] == [{"k": "new"}]
    # both tiers read as one series
    b = s.buckets("w", T0, now, 600)
    assert [t for t, _ in b] == [T0 + 1800 + 600 * k for k in range(9)]


def test_disk_bound_keeps_the_file_under_its_limit(tmp_path: Path) -> None:
    limit = 1024 * 1024
    s = store(tmp_path, max_bytes=limit)
    t = T0
    for _ in range(12):  # ~12 x 20 series x 600 s of 1 s data: several MB unbounded
        s.write([Sample(f"dev/701/P{k}", t + i, float(i)) for i in range(600) for k in range(20)])
        t += 600
        s.compact(t, raw_keep_s=86400, minute_keep_s=86400 * 30, events_keep_s=86400)
        assert s.file_bytes() <= limit
    assert s.integrity() == "ok"
    newest = s.buckets("dev/701/P0", t - 600, t, 1)
    assert len(newest) == 600  # the newest data is what stays
    assert s.oldest() is not None and s.oldest() > T0  # the oldest went


def test_recorder_reads_the_topic_tree() -> None:
    now = [T0 + 0.5]
    r = Recorder("s1", HistoryConfig(), clock=lambda: now[0])
    r.on_message("bess/s1/battery/802/SoC", b"55.5")
    r.on_message("bess/s1/battery/802/W_SF", b"-1")  # scale factors are skipped
    r.on_message("bess/s1/battery/1/Mn", b'"acme"')  # strings are not series
    r.on_message("bess/s1/battery/802/Evt1", b"null")
    r.on_message("bess/s1/battery/set/802/SetOp", b'{"value": 1}')  # requests are not data
    r.on_message("bess/s1/battery/status", b"online")
    r.on_message("bess/s1/battery/status", b"online")  # no change: no event
    state = {
        "state": "charging",
        "setpoint": {"requested_w": -5000, "applied_w": -4800},
        "limits": {"charge_w": 4800, "discharge_w": 6000},
        "soc": 55.4,
        "faults": [],
        "reason": "command charge",
        "ts": 1,
    }
    r.on_message("bess/s1/controller/state", json.dumps(state).encode())
    r.on_message("bess/s1/controller/state", json.dumps({**state, "ts": 2}).encode())
    r.on_message("bess/s1/controller/events", b'{"kind": "transition", "to": "charging"}')
    r.on_message("bess/s1/reply/x/1", b'{"ok": true}')
    r.on_message("bess/other/battery/802/SoC", b"1")
    samples, events = r.take()
    assert {(s.key, s.v) for s in samples} == {
        ("battery/802/SoC", 55.5),
        ("controller/soc", 55.4),
        ("controller/setpoint_w", -4800.0),
        ("controller/requested_w", -5000.0),
        ("controller/charge_limit_w", 4800.0),
        ("controller/discharge_limit_w", 6000.0),
    }
    assert [
        (e.source, e.body.get("state", e.body.get("kind", e.body.get("status")))) for e in events
    ] == [
        ("battery/status", "online"),
        ("controller/state", "charging"),  # once: a republish with a new ts is no change
        ("controller", "transition"),
    ]
    assert r.take() == ([], [])


def test_history_section_validation() -> None:
    cfg = HistorySchema().load({"path": "h.sqlite", "raw_keep_s": 3600})
    assert cfg.raw_keep_s == 3600 and cfg.minute_keep_s == 30 * 86400
    from marshmallow import ValidationError

    with pytest.raises(ValidationError) as exc:
        HistorySchema().load({"raw_keep_s": 7200, "minute_keep_s": 3600})
    assert "minute_keep_s" in exc.value.messages
    with pytest.raises(ValidationError) as exc:
        HistorySchema().load({"max_bytes": 10})
    assert "max_bytes" in exc.value.messages


def _day(tmp_path: Path) -> HistoryStore:
    s = store(tmp_path)
    s.write([Sample("meter/203/W", T0 + i, 1000.0 + i) for i in range(0, 100, 10)])
    s.write([Sample("controller/soc", T0 + 5, 50.0)])
    return s


def test_export_is_a_regular_grid_with_held_values(tmp_path: Path) -> None:
    s = _day(tmp_path)
    out = io.StringIO()
    rows = export_csv(
        s, parse_points("grid_w=meter/203/W,controller/soc"), T0, T0 + 200, out, 5, 30
    )
    assert rows == 40
    table = list(csv.reader(io.StringIO(out.getvalue())))
    assert table[0] == ["ts", "grid_w", "controller/soc"]
    assert table[1] == [str(T0), "1000", ""]  # SoC not known yet
    assert table[2] == [str(T0 + 5), "1000", "50"]
    assert table[3] == [str(T0 + 10), "1010", "50"]
    assert table[8] == [str(T0 + 35), "1030", "50"]  # held 30 s ...
    assert table[9] == [str(T0 + 40), "1040", ""]  # ... and no longer
    assert table[-1] == [str(T0 + 195), "", ""]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "yesterday", "--to", "2025-12-02"], "--from: 'yesterday' is not a time"),
        (
            ["--from", "2025-12-01T10:00:00", "--to", "2025-12-02"],
            "--from: '2025-12-01T10:00:00' has no UTC offset",
        ),
        (["--from", "2025-12-02", "--to", "2025-12-01"], "--to: must be after --from"),
        (
            ["--from", "2025-12-01", "--to", "2025-12-02", "--points", "nope/1/W"],
            "--points: no recorded series 'nope/1/W'",
        ),
        (
            ["--from", "2025-12-01", "--to", "2025-12-02", "--points", "a=,b"],
            "--points: 'a=' must be KEY, NAME=KEY or NAME=KEY+KEY...",
        ),
    ],
)
def test_export_refuses_bad_options_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    _day(tmp_path).close()
    full = ["history", "export", "--db", str(tmp_path / "h.sqlite"), "--points", "controller/soc"]
    assert main([*full, *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_export_command_writes_csv_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _day(tmp_path).close()
    site = tmp_path / "site.toml"
    site.write_text(
        '[site]\nid = "s1"\n[history]\npath = "h.sqlite"\n'
    )  # relative to the site file
    argv = ["history", "export", "-c", str(site), "--from", "2025-12-01T00:00:00+00:00"]
    argv += ["--to", "2025-12-01T00:01:00Z", "--points", "meter/203/W"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "ts,meter/203/W" and len(lines) == 61
    assert lines[-1] == f"{T0 + 59},1050"
    assert main(["history", "export", "-c", str(site), "--list"]) == 0
    assert capsys.readouterr().out.split() == ["controller/soc", "meter/203/W"]


def test_parse_time_forms() -> None:
    assert parse_time("--from", "2025-12-01") == T0
    assert parse_time("--from", "2025-12-01T01:00:00+01:00") == T0
    assert parse_time("--from", str(T0)) == T0
    with pytest.raises(ExportError):
        parse_time("--to", "")


def test_export_sums_and_the_backtest_format(tmp_path: Path) -> None:
    s = _day(tmp_path)
    s.write([Sample("inv/701/W", T0 + 20, -500.0)])
    out = io.StringIO()
    pts = parse_points("load_w=meter/203/W+inv/701/W")
    rows = export_csv(s, pts, T0, T0 + 60, out, 10, 60, iso=True, skip_empty=True)
    lines = out.getvalue().splitlines()
    assert lines[0] == "time,load_w" and rows == 4  # the rows before the inverter are left out
    assert lines[1] == "2025-12-01T00:00:20+00:00,520"  # 1020 + -500
    assert lines[-1] == "2025-12-01T00:00:50+00:00,550"
