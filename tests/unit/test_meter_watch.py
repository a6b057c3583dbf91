"""The frozen-meter watch as a pure function of readings and an injected clock."""

from __future__ import annotations

import pytest

from edge.controller.meter_watch import MeterWatch, margin_w
from tests.unit.controller_fakes import FakeClock

LIMIT = 100_000.0  # margin 2 kW


def watch(hold_off_s: float = 10.0) -> tuple[MeterWatch, FakeClock]:
    clock = FakeClock(0.0)
    return MeterWatch(clock, hold_off_s), clock


def feed(
    w: MeterWatch,
    clock: FakeClock,
    seconds: float,
    meter: object,
    battery: object,
    step: float = 0.5,
) -> None:
    """Poll every `step` s for `seconds`: the meter (a value or a function of the time) and
    the battery (likewise), with a fresh poll time each time."""
    end = clock.now + seconds
    while clock.now < end - 1e-9:
        clock.now += step
        m = meter(clock.now) if callable(meter) else meter
        b = battery(clock.now) if callable(battery) else battery
        w.observe(m, 1.7e9 + clock.now, b, LIMIT)


def test_the_margin_is_500_w_or_2_percent_of_the_larger_limit() -> None:
    assert margin_w(None) == 500.0
    assert margin_w(10_000) == 500.0
    assert margin_w(100_000) == 2_000.0
    assert margin_w(1_000_000) == 20_000.0


def test_frozen_once_the_hold_off_has_passed_since_the_battery_moved() -> None:
    w, clock = watch(10.0)
    feed(w, clock, 30.0, 52_340.0, 0.0)  # a long quiet spell with the same reading
    assert w.frozen() is None
    feed(w, clock, 2.0, 52_340.0, lambda t: min(5000.0, (t - 30.0) * 2500))  # 0 -> 5 kW
    assert w.frozen() is None  # moved, but the hold-off starts only now
    feed(w, clock, 7.0, 52_340.0, 5000.0)
    assert w.frozen() is None  # 8 s since the move: still giving the meter time
    feed(w, clock, 3.0, 52_340.0, 5000.0)
    f = w.frozen()
    assert f is not None
    assert f.value_w == 52_340.0
    assert f.battery_moved_w == 5000.0
    assert f.unchanged_s == pytest.approx(41.5)  # first seen at the first poll, t = 0.5 s
    assert f.describe("m1") == (
        "meter m1 frozen: W 52340 unchanged for 41.5 s while battery power moved 5.0 kW"
    )


def test_a_quiet_site_with_a_steady_battery_is_never_judged() -> None:
    w, clock = watch(10.0)
    feed(w, clock, 3600.0, 0.0, 0.0)  # night, no load, battery idle: exactly 0 W for an hour
    assert w.frozen() is None
    # the battery wanders within the margin (inverter measurement noise): still not judged
    feed(w, clock, 600.0, 0.0, lambda t: 900.0 if int(t) % 2 else -900.0)
    assert w.frozen() is None


def test_a_meter_whose_value_changes_by_noise_is_not_frozen() -> None:
    w, clock = watch(10.0)
    # the battery ramps 0 -> 20 kW; the meter follows only roughly, +-10 W of noise on a
    # nearly flat reading (load rose as the battery did), but it is never exactly the same
    feed(
        w,
        clock,
        60.0,
        lambda t: 50_000.0 + (10.0 if int(t * 2) % 2 else -10.0),
        lambda t: min(20_000.0, t * 1000),
    )
    assert w.frozen() is None


def test_it_resumes_when_the_value_changes_and_judges_anew() -> None:
    w, clock = watch(10.0)
    feed(w, clock, 1.0, 40_000.0, 0.0)
    feed(w, clock, 12.0, 40_000.0, 10_000.0)
    assert w.frozen() is not None
    feed(w, clock, 0.5, 40_010.0, 10_000.0)  # the reading moves again
    assert w.frozen() is None
    # the new value stays, the battery steady: nothing to judge by
    feed(w, clock, 30.0, 40_010.0, 10_000.0)
    assert w.frozen() is None
    # the battery then moves and the reading does not: frozen again after the hold-off
    feed(w, clock, 10.5, 40_010.0, 0.0)
    assert w.frozen() is not None


def test_no_fresh_poll_since_the_move_is_staleness_not_a_frozen_value() -> None:
    w, clock = watch(10.0)
    feed(w, clock, 1.0, 40_000.0, 0.0)
    last_poll = 1.7e9 + clock.now
    for _ in range(30):  # the adapter's ts stops advancing while the battery moves
        clock.now += 0.5
        w.observe(40_000.0, last_poll, 10_000.0, LIMIT)
    assert w.frozen() is None
    clock.now += 0.5
    w.observe(40_000.0, 1.7e9 + clock.now, 10_000.0, LIMIT)  # one fresh poll, same value
    assert w.frozen() is not None


def test_a_missing_reading_forgets_the_run() -> None:
    w, clock = watch(10.0)
    feed(w, clock, 12.0, 40_000.0, lambda t: 0.0 if t < 1 else 10_000.0)
    assert w.frozen() is not None
    feed(w, clock, 0.5, None, 10_000.0)
    assert w.frozen() is None
    feed(w, clock, 5.0, 40_000.0, 10_000.0)  # back with the same value, battery steady
    assert w.frozen() is None


def test_hold_off_zero_switches_the_check_off() -> None:
    w, clock = watch(0.0)
    feed(w, clock, 600.0, 40_000.0, lambda t: 0.0 if t < 1 else 50_000.0)
    assert w.frozen() is None


def test_the_verdict_is_latched_so_the_reason_does_not_change_every_tick() -> None:
    w, clock = watch(10.0)
    feed(w, clock, 1.0, 40_000.0, 0.0)
    feed(w, clock, 11.0, 40_000.0, 4_000.0)
    first = w.frozen()
    assert first is not None
    feed(w, clock, 30.0, 40_000.0, lambda t: -8_000.0)  # still stuck, the battery moves on
    assert w.frozen() == first
