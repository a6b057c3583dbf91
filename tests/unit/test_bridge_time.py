"""Time resource in any zone, with and without DST (B12: zones without DST crashed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edge.bridge.timeres import dst_transitions, time_fields


def ts(*a: int) -> int:
    return int(datetime(*a, tzinfo=UTC).timestamp())


def test_los_angeles_summer() -> None:
    now = ts(2026, 7, 1, 12)
    t = time_fields(now, "America/Los_Angeles")
    assert t.dstStartTime == ts(2026, 3, 8, 10)  # 02:00 PST
    assert t.dstEndTime == ts(2026, 11, 1, 9)  # 02:00 PDT
    assert (t.tzOffset, t.dstOffset) == (-8 * 3600, 3600)
    assert t.localTime == now - 7 * 3600
    assert t.currentTime == now


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "UTC", "Asia/Tokyo", "America/Phoenix"])
def test_zones_without_dst(zone: str) -> None:
    t = time_fields(ts(2026, 7, 1), zone)
    assert t.dstOffset == 0 and t.dstStartTime == t.dstEndTime
    assert t.localTime - t.currentTime == t.tzOffset


def test_southern_hemisphere() -> None:
    t = time_fields(ts(2026, 1, 15), "Australia/Sydney")
    assert t.tzOffset == 10 * 3600 and t.dstOffset == 3600
    assert t.dstEndTime == ts(2026, 4, 4, 16)  # 03:00 AEDT, first Sunday of April
    assert t.dstStartTime == ts(2026, 10, 3, 16)  # 02:00 AEST, first Sunday of October
    assert t.localTime - t.currentTime == 11 * 3600


def test_transitions_are_cached_per_year() -> None:
    assert dst_transitions("Europe/Berlin", 2026) is dst_transitions("Europe/Berlin", 2026)
