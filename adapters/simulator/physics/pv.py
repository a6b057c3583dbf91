"""A PV inverter: SunSpec models 1, 701 (AC measurements) and 702 (ratings).

Output follows the irradiance at once (no setpoint, no curtailment): `W` = `rating_w` x
irradiance / 1000 W/m2, capped at the rating, >= 0 (topics.md "Power signs"). 701
`TotWhInj` counts the energy. An injected `Alrm`/`St`/`InvSt` fault stops the output.
"""

from __future__ import annotations

import random

from adapters.simulator.config import SimDeviceConfig
from adapters.simulator.physics.common import EnergyCounter, phase_amps, set_common
from adapters.simulator.physics.inverter_registers import init_701_702
from adapters.simulator.physics.profiles import STC_W_M2, Irradiance, clear_sky, interpolated
from adapters.simulator.registers import SunSpecImage

PV_MODELS = (1, 701, 702)


class PvPhysics:
    """Irradiance in, AC power out."""

    def __init__(
        self,
        cfg: SimDeviceConfig,
        img: SunSpecImage,
        start_s: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = cfg
        self.img = img
        self.profile = cfg.profile
        self.t = start_s  # seconds after local midnight
        sky = (
            interpolated(cfg.irradiance_profile)
            if cfg.irradiance_profile
            else clear_sky(cfg.sunrise_s, cfg.sunset_s, cfg.peak_irradiance)
        )
        self.irradiance = Irradiance(sky, cfg.cloud_per_h, cfg.cloud_depth, cfg.cloud_s, rng)
        self.fault_forced: dict[str, int] = {}
        self.energy = EnergyCounter()
        set_common(img, cfg, "sim-pv")
        init_701_702(img, cfg.rating_w, 0.0)
        img.set(701, "DERMode", 0)
        self.power_w = self.output()
        self.publish()

    def faulted(self) -> bool:
        return (
            bool(self.img.get(701, "Alrm"))
            or self.fault_forced.get("St") == 0
            or self.fault_forced.get("InvSt") in (0, 6)
        )

    def is_on(self) -> bool:
        return not self.faulted()

    def output(self) -> float:
        """The W the array gives now."""
        if not self.is_on():
            return 0.0
        w = self.cfg.rating_w * self.irradiance.value(self.t) / STC_W_M2
        return max(0.0, min(self.cfg.rating_w, w))

    def on_write(self, points: list[tuple[int | str, str]]) -> None:
        """Nothing a client writes changes the output."""

    def step(self, dt: float) -> None:
        self.t += dt
        self.irradiance.step(self.t, dt)
        self.power_w = self.output()
        self.energy.add(self.power_w, dt)

    def trip(self) -> None:
        """A fault stops the output at once."""
        self.power_w = 0.0
        self.publish()

    def publish(self) -> None:
        img, p = self.img, self.power_w
        img.set(701, "W", p)
        img.set(701, "VA", p)
        img.set(701, "Var", 0)
        img.set(701, "PF", 1.0)
        img.set(701, "A", phase_amps(p))
        if "St" not in self.fault_forced:
            img.set(701, "St", 1)
        if "InvSt" not in self.fault_forced:
            img.set(701, "InvSt", 3 if p else 7)  # RUNNING / STANDBY (night)
        img.set(701, "TotWhInj", int(self.energy.forward_wh))
