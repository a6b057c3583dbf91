"""Frozen-meter detection: a grid meter that keeps answering polls but whose reading is stuck.

The meter at the point of connection reads `grid = load - pv - battery` (topics.md, "Power
signs"). When the battery's own AC power (the inverter's measured W) moves by a clear margin,
the grid reading must move with it, unless load and PV happened to move by exactly the same
watts, to the meter's last digit, across fresh polls. So a meter W that stays *exactly* the same
while the battery moved by at least `margin` and polls kept arriving for `hold_off_s` is frozen
(a stuck CT or transducer, a firmware serving its last value). A quiet site (battery steady) is
never judged: with nothing moving, an unchanged reading is what a healthy meter shows too.

The margin is max(500 W, 2 % of the larger power limit in force): well above the resolution of a
203 `W` register (10 W at the scale a 100 kW site needs) and the inverter's measuring error.

Pure: the caller feeds readings with `observe`, the clock is injected, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MARGIN_FLOOR_W = 500.0
MARGIN_SHARE = 0.02  # of the larger of the charge and discharge limits


def margin_w(limit_w: float | None) -> float:
    """How far the battery must move before an unchanged meter reading means "frozen"."""
    return max(MARGIN_FLOOR_W, MARGIN_SHARE * max(0.0, limit_w or 0.0))


@dataclass(frozen=True)
class Frozen:
    """The verdict, as it stood when first reached (so the reason on the state topic, and the
    event it starts, do not change every tick): the stuck value, how long it had not changed,
    how far the battery had moved meanwhile."""

    value_w: float
    unchanged_s: float
    battery_moved_w: float

    def describe(self, meter: str) -> str:
        return (
            f"meter {meter} frozen: W {self.value_w:.10g} unchanged for {self.unchanged_s:.1f} s"
            f" while battery power moved {self.battery_moved_w / 1000:.1f} kW"
        )


class MeterWatch:
    """Follows one meter's W and the battery's W; `frozen()` is None while the meter is
    believable. `hold_off_s` 0 switches the check off."""

    def __init__(self, clock: Callable[[], float], hold_off_s: float) -> None:
        self.clock = clock
        self.hold_off_s = hold_off_s
        self._value: float | None = None  # the meter W of the current run of equal readings
        self._since = 0.0  # when that value was first seen
        self._low: float | None = None  # battery W range seen during the run
        self._high: float | None = None
        self._poll: float | None = None  # the latest poll time seen during the run
        self._moved_at: float | None = None  # when the battery range first reached the margin
        self._poll_at_move: float | None = None
        self._verdict: Frozen | None = None  # latched until the reading moves

    def observe(
        self,
        meter_w: float | None,
        poll_at: float | None,
        battery_w: float | None,
        limit_w: float | None,
    ) -> None:
        """One look at the latest telemetry: the meter's W, the time of its last good poll
        (the adapter's `ts`), the inverter's measured W, the larger power limit in force."""
        if self.hold_off_s <= 0 or meter_w is None:
            self._value = self._verdict = None
            return
        now = self.clock()
        if meter_w != self._value:  # it moved: a new run starts here
            self._value, self._since, self._poll = meter_w, now, poll_at
            self._low = self._high = battery_w
            self._moved_at = self._poll_at_move = self._verdict = None
            return
        self._poll = poll_at
        if battery_w is None:
            return
        self._low = battery_w if self._low is None else min(self._low, battery_w)
        self._high = battery_w if self._high is None else max(self._high, battery_w)
        if self._moved_at is None and self._high - self._low >= margin_w(limit_w):
            self._moved_at, self._poll_at_move = now, poll_at

    def frozen(self) -> Frozen | None:
        """Frozen when, `hold_off_s` after the battery moved by the margin, the reading is
        still the same and at least one poll newer than that moment has said so."""
        if self.hold_off_s <= 0 or self._value is None or self._moved_at is None:
            return None
        if self._verdict is not None:
            return self._verdict
        now = self.clock()
        if now - self._moved_at < self.hold_off_s:
            return None
        if self._poll is None or self._poll_at_move is None or self._poll <= self._poll_at_move:
            return None  # no fresh poll since: that is staleness, not a frozen value
        assert self._low is not None and self._high is not None
        self._verdict = Frozen(self._value, now - self._since, self._high - self._low)
        return self._verdict
