"""What drives a site: its load and the sun. Pure, seeded, stepped in simulated seconds.

Time `t` is seconds after local midnight (`[simulator] start_s` + simulated time), so a
profile follows the time-scale factor like every other piece of physics.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Sequence

DAY_S = 86_400.0
STC_W_M2 = 1000.0  # irradiance at which a PV array gives its rating

Profile = Sequence[tuple[float, float]]


def stepped(profile: Profile) -> Callable[[float], float]:
    """`[[s, value], ...]` held from each time to the next, repeated every last `s`."""
    times = [p[0] for p in profile]
    values = [p[1] for p in profile]
    period = times[-1] if len(times) > 1 and times[-1] > 0 else 0.0

    def at(t: float) -> float:
        tt = t % period if period else t
        i = bisect.bisect_right(times, tt) - 1
        return values[max(0, i)]

    return at


def interpolated(profile: Profile, period: float = DAY_S) -> Callable[[float], float]:
    """`[[s, value], ...]` joined by straight lines, repeated every `period` seconds."""
    times = [p[0] for p in profile]
    values = [p[1] for p in profile]

    def at(t: float) -> float:
        tt = t % period
        i = bisect.bisect_right(times, tt)
        if i == 0:
            return values[0]
        if i == len(times):
            return values[-1]
        t0, t1, v0, v1 = times[i - 1], times[i], values[i - 1], values[i]
        return v0 + (v1 - v0) * (tt - t0) / (t1 - t0)

    return at


def clear_sky(sunrise_s: float, sunset_s: float, peak: float) -> Callable[[float], float]:
    """A half-sine day: 0 before sunrise and after sunset, `peak` at solar noon."""
    span = sunset_s - sunrise_s

    def at(t: float) -> float:
        tt = t % DAY_S
        if tt <= sunrise_s or tt >= sunset_s:
            return 0.0
        return peak * math.sin(math.pi * (tt - sunrise_s) / span)

    return at


class SiteLoad:
    """Site consumption: a base profile, noise, and steps injected at run time.

    Noise is an Ornstein-Uhlenbeck process (standard deviation `noise_w`, correlation time
    `noise_tau_s`): loads wander rather than jump every step. `step_w` adds to the profile;
    `fixed_w` replaces profile and noise until released (None).
    """

    def __init__(
        self,
        base: Callable[[float], float],
        noise_w: float = 0.0,
        noise_tau_s: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self.base = base
        self.noise_w = noise_w
        self.noise_tau_s = noise_tau_s
        self.rng = rng or random.Random(0)
        self.noise = 0.0
        self.step_w = 0.0
        self.fixed_w: float | None = None

    def step(self, dt: float) -> None:
        if self.noise_w <= 0 or dt <= 0:
            return
        a = math.exp(-dt / self.noise_tau_s)
        self.noise = a * self.noise + self.noise_w * math.sqrt(1 - a * a) * self.rng.gauss()

    def value(self, t: float) -> float:
        """Load in W (>= 0) at time of day `t`."""
        if self.fixed_w is not None:
            return self.fixed_w
        return max(0.0, self.base(t) + self.step_w + self.noise)


class Irradiance:
    """Plane-of-array irradiance (W/m2): a clear-sky profile with cloud transients.

    Clouds arrive at random (Poisson, `cloud_per_h` an hour on average, only in daylight),
    each removing `cloud_depth` of the irradiance for an exponentially distributed time
    (mean `cloud_s`). `shade(depth, s)` starts one now (fault injection, tests).
    """

    def __init__(
        self,
        sky: Callable[[float], float],
        cloud_per_h: float = 0.0,
        cloud_depth: float = 0.7,
        cloud_s: float = 120.0,
        rng: random.Random | None = None,
    ) -> None:
        self.sky = sky
        self.cloud_per_h = cloud_per_h
        self.cloud_depth = cloud_depth
        self.cloud_s = cloud_s
        self.rng = rng or random.Random(0)
        self.depth = 0.0  # shading of the cloud in front of the sun now
        self.left_s = 0.0  # how long that cloud stays

    def shade(self, depth: float, seconds: float) -> None:
        self.depth = depth if seconds > 0 else 0.0
        self.left_s = seconds if depth > 0 else 0.0

    def step(self, t: float, dt: float) -> None:
        if self.left_s > 0:
            self.left_s -= dt
            if self.left_s <= 0:
                self.depth, self.left_s = 0.0, 0.0
        elif (
            self.cloud_per_h > 0
            and self.sky(t) > 0
            and self.rng.random() < 1 - math.exp(-self.cloud_per_h * dt / 3600.0)
        ):
            self.shade(self.cloud_depth, self.rng.expovariate(1 / self.cloud_s))

    def value(self, t: float) -> float:
        return max(0.0, self.sky(t)) * (1.0 - self.depth)
