"""Measured rows of the reliability suite: tests append, `tests.reliability.report` prints.

A test calls `record(...)` with what it measured. Rows go to the JSON-lines file named by
`BESS_RELIABILITY_RESULTS` (the report command sets it); without it nothing is written, so a
plain `pytest` run leaves no files behind.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ENV = "BESS_RELIABILITY_RESULTS"
LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


@dataclass
class Row:
    fault: str
    detection_s: float | None
    safe_s: float | None
    data_lost: str
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def record(row: Row) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    with Path(path).open("a") as f:
        f.write(json.dumps(asdict(row)) + "\n")


def load(path: Path) -> list[Row]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            rows.append(Row(**json.loads(line)))
    return rows


def fmt_s(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} s"


def table(rows: list[Row]) -> str:
    out = [
        "| fault | detection time | time to safe state | data lost | notes |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r.fault} | {fmt_s(r.detection_s)} | {fmt_s(r.safe_s)} | {r.data_lost} "
            f"| {r.notes} |"
        )
    return "\n".join(out)


def log_times(log_text: str, needle: str, after_wall: float) -> list[float]:
    """Wall-clock times (Unix s) of service log lines containing `needle`, after `after_wall`.

    The CLI logs `%(asctime)s` with milliseconds in local time.
    """
    out = []
    for line in log_text.splitlines():
        if needle not in line:
            continue
        m = LOG_TS.match(line)
        if not m:
            continue
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if t >= after_wall - 0.001:
            out.append(t)
    return out
