"""Issue 6.6: sustained commands plus telemetry at 10x the default poll rate; memory stays flat.

The adapters poll every 0.1 s (the default is 1 s) while an operator sends 25 commands/s
(charge at changing powers, each one a Modbus write with read-back, and get_state). After a
warm-up, the RSS of the adapter and controller processes (VmRSS from /proc/PID/status) is
read before and after the sustained phase and must not grow by more than GROWTH_LIMIT_KIB.
Every command must be answered, and none refused.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from tests.reliability.results import Row, record
from tests.reliability.stack import ROOT, Stack

pytestmark = [pytest.mark.broker, pytest.mark.slow]

RATE = 25.0  # commands per second
POLL_S = 0.1  # 10 x the default poll rate (poll_s = 1.0)
GROWTH_LIMIT_KIB = 4096
SERVICES = ("adapter-battery", "adapter-inverter", "controller")


def drive(s: Stack, seconds: float) -> int:
    """Send commands at RATE for `seconds`; return how many were sent."""
    assert s.op is not None
    powers = (10000, 15000, 20000)
    n = 0
    start = time.monotonic()
    while (now := time.monotonic()) - start < seconds:
        if n % 2:
            s.op.send("charge", {"power_w": powers[(n // 2) % 3]})
        else:
            s.op.send("get_state")
        n += 1
        time.sleep(max(0.0, start + n / RATE - now))
    return n


def run_load(tmp_path: Path, seconds: float) -> None:
    with Stack(tmp_path, adapter={"poll_s": POLL_S}) as s:
        assert s.op is not None and s.probe is not None
        s.energise("charge", 10000)
        drive(s, 3.0)  # warm-up: imports, caches, paho buffers
        s.wait(lambda: not s.op.unanswered(), 10, "warm-up answered")
        before = s.rss()
        s.probe.clear()
        t0 = time.monotonic()
        first = len(s.op.sent)
        sent = drive(s, seconds)
        elapsed = time.monotonic() - t0
        s.wait(lambda: not s.op.unanswered(), 10, "every command answered")
        after = s.rss()
        msgs = len(s.probe.snapshot())
        corrs = list(s.op.sent)[first:]
        replies = [s.op.replies[c] for c in corrs]
        refused = [b for _t, b in replies if not b.get("ok")]
        lat = sorted((s.op.replies[c][0] - s.op.sent[c]) * 1000 for c in corrs)
        assert not refused, refused[:3]
        assert s.state()["state"] == "charging", s.state()
        point_msgs = sum(
            1
            for m in s.probe.snapshot()
            if m.topic.startswith((f"{ROOT}/battery/", f"{ROOT}/inverter/"))
        )
    growth = {n: after[n] - before[n] for n in SERVICES}
    p50 = statistics.median(lat)
    p99 = lat[int(0.99 * (len(lat) - 1))]
    report = ", ".join(f"{n} {before[n] / 1024:.1f} -> {after[n] / 1024:.1f} MiB" for n in SERVICES)
    print(
        f"\nload {seconds:g} s: {sent} commands ({sent / elapsed:.1f}/s), p50 {p50:.1f} ms,"
        f" p99 {p99:.1f} ms; {msgs} MQTT messages ({point_msgs} device topics); RSS {report}"
    )
    record(
        Row(
            fault=f"load: {RATE:g} commands/s + polling every {POLL_S:g} s for {seconds:g} s",
            detection_s=None,
            safe_s=None,
            data_lost=f"none: {sent}/{sent} commands answered, 0 refused",
            notes=f"command p50 {p50:.1f} ms, p99 {p99:.1f} ms; RSS {report}",
            extra={"rss_before_kib": before, "rss_after_kib": after},
        )
    )
    assert all(g <= GROWTH_LIMIT_KIB for g in growth.values()), growth


@pytest.mark.timeout(90)
def test_load_short(tmp_path: Path) -> None:
    run_load(tmp_path, 10.0)


@pytest.mark.reliability_full
@pytest.mark.timeout(180)
def test_load_long(tmp_path: Path) -> None:
    run_load(tmp_path, 60.0)
