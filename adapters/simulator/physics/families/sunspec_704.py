"""Physics of the `sunspec_704` family (simulator profile `sunspec`): 701/702/704.

704 `WSetEna`=1 and `WSetMod`=1 (WATTS): `WSet` in W, positive discharge, negative charge;
`WSetMod`=0 (W_MAX_PCT): `WSetPct` in % of 702 `WMax`. `WMaxLimPctEna`=1 caps |P| at
`WMaxLimPct` % of `WMax`. `WSetRvrtTms` > 0: without a new write of `WSetEna`/`WSet`/`WSetPct`
within that many clock seconds the setpoint is dropped; `WSetRvrtRem` shows the seconds left.
Energy: 701 `TotWhInj` (discharge) / `TotWhAbs` (charge).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from adapters.simulator.physics.common import phase_amps
from adapters.simulator.physics.families.base import FamilyPhysics, Timer
from adapters.simulator.physics.families.sunspec_704_grid import (
    MODEL_DATA,
    GridSupport,
    init_grid_models,
)
from adapters.simulator.physics.inverter_registers import init_sunspec
from adapters.simulator.registers import SunSpecImage


class SunSpec704Physics(FamilyPhysics):
    sim_profile = "sunspec"
    MODEL_DATA = MODEL_DATA

    def init_registers(self) -> None:
        self.wset_timer = Timer()
        self.wmaxlim_timer = Timer()
        self.support = GridSupport()
        assert isinstance(self.img, SunSpecImage)
        init_sunspec(self.img, self.inv.cfg.rating_w)
        if self.img.has(711, "Ena"):
            init_grid_models(self.img)

    def _v_pct(self) -> float:
        g = self.inv.grid
        return g.v / g.nominal_v * 100.0

    def grid_delta(self, base_w: float, wmax: float, dt: float) -> float:
        if not self.img.has(711, "Ena"):
            return 0.0
        g = self.inv.grid
        return self.support.delta(self.img, base_w, wmax, self._v_pct(), g.hz, g.nominal_hz, dt)

    def reactive(self, p_w: float, wmax: float, dt: float) -> float:
        if not self.img.has(705, "Ena"):
            return 0.0
        return self.support.reactive(self.img, p_w, wmax, self._v_pct(), dt)

    def on_write(self, names: set[str]) -> None:
        if names & {"WSetEna", "WSet", "WSetPct", "WSetMod", "WSetRvrtTms"}:
            self.wset_timer.left = self.tms(704, "WSetRvrtTms")
        if names & {"WMaxLimPctEna", "WMaxLimPct", "WMaxLimPctRvrtTms"}:
            self.wmaxlim_timer.left = self.tms(704, "WMaxLimPctRvrtTms")

    def faulted(self) -> bool:
        forced = self.inv.fault_forced
        return (
            bool(self.img.get(701, "Alrm"))
            or forced.get("St") == 0
            or forced.get("InvSt") in (0, 6)
        )

    def wmax_setting(self) -> float | None:
        v = self.img.get(702, "WMax")
        return float(v) if isinstance(v, (int, float)) else None

    def requested_w(self, wmax: float) -> float:
        img, req = self.img, 0.0
        if img.get(704, "WSetEna") == 1:
            if img.get(704, "WSetMod") == 1:
                req = float(img.get(704, "WSet") or 0)
            else:
                req = float(img.get(704, "WSetPct") or 0) / 100.0 * wmax
        if img.get(704, "WMaxLimPctEna") == 1:
            cap = float(img.get(704, "WMaxLimPct") or 0) / 100.0 * wmax
            req = max(-cap, min(cap, req))
        return req

    def timers(self) -> list[tuple[Timer, Callable[[], None]]]:
        return [(self.wset_timer, self._revert_wset), (self.wmaxlim_timer, self._revert_wmaxlim)]

    def _revert_wset(self) -> None:
        self.img.set(704, "WSetEna", 0)
        self.img.set(704, "WSet", 0)
        self.img.set(704, "WSetPct", 0)

    def _revert_wmaxlim(self) -> None:
        self.img.set(704, "WMaxLimPctEna", 0)

    def publish(self, p: float) -> None:
        img, forced = self.img, self.inv.fault_forced
        img.set(701, "W", p)
        q = self.inv.var
        va = math.hypot(p, q)
        img.set(701, "VA", va)
        img.set(701, "Var", q)
        img.set(701, "PF", abs(p) / va if va > 1.0 else 1.0)
        img.set(701, "Hz", self.inv.grid.hz)
        img.set(701, "LNV", self.inv.grid.v)
        img.set(701, "A", phase_amps(p))
        # An injected fault changes only the injected register (and stops power), so a
        # test of one detection path cannot pass through another one.
        if "St" not in forced:
            img.set(701, "St", 1)
        if "InvSt" not in forced:
            img.set(701, "InvSt", 3 if p else 7)
        img.set(701, "TotWhInj", int(self.inv.energy.forward_wh))
        img.set(701, "TotWhAbs", int(self.inv.energy.reverse_wh))
        img.set(704, "WSetRvrtRem", math.ceil(self.wset_timer.left or 0))
        img.set(704, "WMaxLimPctRvrtRem", math.ceil(self.wmaxlim_timer.left or 0))


PHYSICS = SunSpec704Physics
