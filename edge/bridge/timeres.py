"""The 2030.5 Time resource for any time zone, with or without DST (B12). No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

TIME_QUALITY = 4  # level 3 source: synchronised to an NTP server, not a primary reference


@dataclass(frozen=True)
class TimeFields:
    currentTime: int
    dstEndTime: int
    dstOffset: int
    dstStartTime: int
    localTime: int
    quality: int
    tzOffset: int


def _dst_s(tz: ZoneInfo, t: int) -> int:
    d = datetime.fromtimestamp(t, tz).dst()
    return int(d.total_seconds()) if d else 0


@lru_cache(maxsize=64)
def dst_transitions(tz_key: str, year: int) -> tuple[int | None, int | None, int]:
    """(dst start, dst end, dst offset s) within `year`, found by sampling then bisecting."""
    tz = ZoneInfo(tz_key)
    t0 = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    t1 = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())
    step = 86400
    start = end = None
    offset = 0
    prev_t, prev = t0, _dst_s(tz, t0)
    t = t0 + step
    while t <= t1:
        cur = _dst_s(tz, t)
        if cur != prev:
            lo, hi = prev_t, t
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _dst_s(tz, mid) == prev:
                    lo = mid
                else:
                    hi = mid
            if cur > prev:
                start, offset = hi, cur
            else:
                end, offset = hi, prev
        prev_t, prev = t, cur
        t += step
    return start, end, offset


def time_fields(now: float, tz_key: str) -> TimeFields:
    tz = ZoneInfo(tz_key)
    t = int(now)
    local = datetime.fromtimestamp(t, tz)
    utcoff = local.utcoffset() or timedelta(0)
    dst = local.dst() or timedelta(0)
    start, end, offset = dst_transitions(tz_key, local.year)
    if start is None or end is None:
        # No DST this year: 2030.5 clients apply dstOffset between start and end; make both 0.
        start = end = 0
        offset = 0
    return TimeFields(
        currentTime=t,
        dstEndTime=end,
        dstOffset=offset,
        dstStartTime=start,
        localTime=t + int(utcoff.total_seconds()),
        quality=TIME_QUALITY,
        tzOffset=int((utcoff - dst).total_seconds()),
    )
