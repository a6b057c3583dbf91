"""Model 203 site meter at the point of connection: grid = load - PV - battery.

Positive `W` = import from the grid (topics.md "Power signs"). The meter owns the site load
(`SiteLoad`) because it is the only device that sees it. `TotWhImp`/`TotWhExp` count energy.
"""

from __future__ import annotations

import math
import random

from adapters.simulator.config import SimDeviceConfig
from adapters.simulator.physics.common import EnergyCounter, phase_amps, pick_sf, put, set_common
from adapters.simulator.physics.grid import Grid
from adapters.simulator.physics.inverter import InverterPhysics
from adapters.simulator.physics.profiles import SiteLoad, stepped
from adapters.simulator.physics.pv import PvPhysics
from adapters.simulator.registers import SunSpecImage

METER_MODELS = (1, 203)


class MeterPhysics:
    """Model 203 at the point of connection: load minus PV minus what the inverters export."""

    def __init__(
        self,
        cfg: SimDeviceConfig,
        img: SunSpecImage,
        inverters: list[InverterPhysics],
        pvs: list[PvPhysics] | None = None,
        start_s: float = 0.0,
        rng: random.Random | None = None,
        grid: Grid | None = None,
    ) -> None:
        self.cfg = cfg
        self.grid = grid or Grid()  # the point of connection: V and Hz the site sees
        self.img = img
        self.inverters = inverters
        self.pvs = pvs or []
        self.t = start_s  # seconds after local midnight
        self.energy = EnergyCounter()  # forward = import, reverse = export
        base = stepped(cfg.load_profile) if cfg.load_profile else (lambda _t: cfg.load_w)
        self.load = SiteLoad(base, cfg.load_noise_w, cfg.load_noise_tau_s, rng)
        self.load_w = self.load.value(self.t)
        self.grid_w = self._grid()
        set_common(img, cfg, "sim-meter")
        peak = max([abs(cfg.load_w)] + [abs(w) for _, w in cfg.load_profile or []])
        peak += 4 * cfg.load_noise_w
        peak += sum(i.cfg.rating_w for i in inverters) + sum(p.cfg.rating_w for p in self.pvs)
        wsf = pick_sf(2 * peak)  # headroom for injected load steps
        put(
            img.set_raw,
            203,
            (
                ("A_SF", -1),
                ("V_SF", -1),
                ("Hz_SF", -2),
                ("W_SF", wsf),
                ("VA_SF", wsf),
                ("VAR_SF", wsf),
                ("PF_SF", -3),
                ("TotWh_SF", 0),
                ("TotVAh_SF", 0),
                ("TotVArh_SF", 0),
            ),
        )
        put(
            img.set,
            203,
            (
                ("PhV", 277.0),
                ("PhVphA", 277.0),
                ("PhVphB", 277.0),
                ("PhVphC", 277.0),
                ("PPV", 480.0),
                ("Hz", 60.0),
                ("Evt", 0),
            ),
        )
        self.publish()

    def _grid(self) -> float:
        return (
            self.load_w - sum(p.power_w for p in self.pvs) - sum(i.power_w for i in self.inverters)
        )

    def on_write(self, points: list[tuple[int | str, str]]) -> None:
        """A meter has no writable physics inputs."""

    def step(self, dt: float) -> None:
        """Advance `dt` simulated seconds; the PV and inverters have stepped already."""
        self.t += dt
        self.load.step(dt)
        self.load_w = self.load.value(self.t)
        self.grid_w = self._grid()
        self.energy.add(self.grid_w, dt)

    def refresh(self) -> None:
        """Recompute the reading now (after an injected load change); publish shows it."""
        self.load_w = self.load.value(self.t)
        self.grid_w = self._grid()

    def publish(self) -> None:
        """Show the physics state in the registers."""
        img, w = self.img, self.grid_w
        img.set(203, "W", w)
        for ph in ("WphA", "WphB", "WphC"):
            img.set(203, ph, w / 3)
        img.set(203, "VA", abs(w))
        var = -sum(i.var for i in self.inverters)  # the meter sees the site's VAr import
        img.set(203, "VAR", var)
        va = math.hypot(w, var)
        img.set(203, "PF", abs(w) / va if va > 1.0 else 1.0)
        g = self.grid
        for pt in ("PhV", "PhVphA", "PhVphB", "PhVphC"):
            img.set(203, pt, g.v)
        img.set(203, "Hz", g.hz)
        img.set(203, "A", phase_amps(w))
        # acc32 0 means "not implemented": start the registers at 1 Wh.
        img.set(203, "TotWhImp", 1 + int(self.energy.forward_wh))
        img.set(203, "TotWhExp", 1 + int(self.energy.reverse_wh))
