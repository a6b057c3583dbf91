"""The grid at the point of connection: voltage and frequency the whole site sees.

Nominal unless something is injected: a step (`set`), a linear ramp to a value over `ramp_s`
(`ramp`), or a recorded profile of `[s, V, Hz]` points from the moment it was given
(`play`, linear between points, the last point held). Runs in simulated time.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence


class Grid:
    def __init__(self, nominal_v: float = 277.0, nominal_hz: float = 60.0) -> None:
        self.nominal_v, self.nominal_hz = nominal_v, nominal_hz
        self.v, self.hz = nominal_v, nominal_hz
        self.t = 0.0  # simulated seconds
        self._ramp: tuple[float, float, float, float, float, float] | None = None
        self._profile: tuple[float, tuple[tuple[float, float, float], ...]] | None = None

    def set(self, v: float | None = None, hz: float | None = None, ramp_s: float = 0.0) -> None:
        """Go to `v`/`hz` (None: keep) at once, or linearly over `ramp_s` seconds."""
        self._profile = None
        v1 = self.v if v is None else v
        hz1 = self.hz if hz is None else hz
        if ramp_s > 0:
            self._ramp = (self.t, ramp_s, self.v, self.hz, v1, hz1)
        else:
            self._ramp, self.v, self.hz = None, v1, hz1

    def play(self, points: Sequence[tuple[float, float, float]]) -> None:
        """Follow `[s, V, Hz]` points from now (s from now, increasing)."""
        self._ramp = None
        self._profile = (self.t, tuple((float(s), float(v), float(h)) for s, v, h in points))
        self._follow()

    def release(self) -> None:
        self.set(self.nominal_v, self.nominal_hz)

    def step(self, dt: float) -> None:
        self.t += dt
        if self._ramp is not None:
            t0, dur, v0, hz0, v1, hz1 = self._ramp
            a = min(1.0, (self.t - t0) / dur)
            self.v, self.hz = v0 + (v1 - v0) * a, hz0 + (hz1 - hz0) * a
            if a >= 1.0:
                self._ramp = None
        elif self._profile is not None:
            self._follow()

    def _follow(self) -> None:
        assert self._profile is not None
        t0, pts = self._profile
        x = self.t - t0
        if x <= pts[0][0]:
            self.v, self.hz = pts[0][1], pts[0][2]
            return
        for (s0, v0, h0), (s1, v1, h1) in itertools.pairwise(pts):
            if x <= s1:
                a = (x - s0) / (s1 - s0)
                self.v, self.hz = v0 + (v1 - v0) * a, h0 + (h1 - h0) * a
                return
        self.v, self.hz = pts[-1][1], pts[-1][2]
