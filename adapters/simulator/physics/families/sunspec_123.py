"""Physics of the `sunspec_123` family (simulator profile `legacy`): 103/120/121/123/124.

124 `StorCtl_Mod` bit 1 (DISCHARGE): +`OutWRte` % of 121 `WMax`; bit 0 (CHARGE): -`InWRte` %
of 124 `WChaMax` (both bits: the sum). 123 `WMaxLim_Ena`=1 caps |P| at `WMaxLimPct` % of
`WMax`. 123 `Conn`=0 turns the inverter off. `InOutWRte_RvrtTms` drops `StorCtl_Mod`/`InWRte`/
`OutWRte` to 0, `WMaxLimPct_RvrtTms` disables the cap, when not refreshed in time.
Energy: 103 `WH` (discharge).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from adapters.simulator.physics.common import phase_amps
from adapters.simulator.physics.families.base import FamilyPhysics, Timer
from adapters.simulator.physics.inverter_registers import init_legacy
from adapters.simulator.registers import SunSpecImage


class SunSpec123Physics(FamilyPhysics):
    sim_profile = "legacy"

    def init_registers(self) -> None:
        self.inout_timer = Timer()
        self.wmaxlim_timer = Timer()
        assert isinstance(self.img, SunSpecImage)
        init_legacy(self.img, self.inv.cfg.rating_w)

    def on_write(self, names: set[str]) -> None:
        if names & {"StorCtl_Mod", "InWRte", "OutWRte", "InOutWRte_RvrtTms"}:
            self.inout_timer.left = self.tms(124, "InOutWRte_RvrtTms")
        if names & {"WMaxLimPct", "WMaxLim_Ena", "WMaxLimPct_RvrtTms"}:
            self.wmaxlim_timer.left = self.tms(123, "WMaxLimPct_RvrtTms")

    def faulted(self) -> bool:
        return bool(self.img.get(103, "Evt1")) or self.inv.fault_forced.get("St") in (1, 7)

    def is_on(self) -> bool:
        return not self.faulted() and self.img.get(123, "Conn") == 1

    def wmax_setting(self) -> float | None:
        v = self.img.get(121, "WMax")
        return float(v) if isinstance(v, (int, float)) else None

    def requested_w(self, wmax: float) -> float:
        img, req = self.img, 0.0
        mod = int(img.get(124, "StorCtl_Mod") or 0)
        if mod & 0b10:
            req += float(img.get(124, "OutWRte") or 0) / 100.0 * wmax
        if mod & 0b01:
            wcha = float(img.get(124, "WChaMax") or wmax)
            req -= float(img.get(124, "InWRte") or 0) / 100.0 * wcha
        if img.get(123, "WMaxLim_Ena") == 1:
            cap = float(img.get(123, "WMaxLimPct") or 0) / 100.0 * wmax
            req = max(-cap, min(cap, req))
        return req

    def timers(self) -> list[tuple[Timer, Callable[[], None]]]:
        return [(self.wmaxlim_timer, self._revert_wmaxlim), (self.inout_timer, self._revert_inout)]

    def _revert_wmaxlim(self) -> None:
        self.img.set(123, "WMaxLim_Ena", 0)

    def _revert_inout(self) -> None:
        self.img.set(124, "StorCtl_Mod", 0)
        self.img.set(124, "InWRte", 0)
        self.img.set(124, "OutWRte", 0)

    def reactive(self, p_w: float, wmax: float, dt: float) -> float:
        """123 `VArPct_Ena` with `VArPct_Mod` 1: `VArWMaxPct` % of WMax, at once."""
        img = self.img
        if img.get(123, "VArPct_Ena") != 1 or img.get(123, "VArPct_Mod") != 1:
            return 0.0
        return float(img.get(123, "VArWMaxPct") or 0) / 100.0 * wmax

    def publish(self, p: float) -> None:
        img, bat = self.img, self.inv.battery
        v = bat.cfg.voltage if bat else 800.0
        img.set(103, "W", p)
        q = self.inv.var
        va = math.hypot(p, q)
        img.set(103, "VA", va)
        img.set(103, "VAr", q)
        img.set(103, "PF", abs(p) / va if va > 1.0 else 1.0)
        img.set(103, "A", phase_amps(p))
        img.set(103, "DCW", p)
        img.set(103, "DCV", v)
        img.set(103, "DCA", abs(p) / v)
        img.set(103, "WH", 1 + int(self.inv.energy.forward_wh))  # acc32: 0 = not implemented
        if "St" not in self.inv.fault_forced:
            img.set(103, "St", 4 if p else 8)
        img.set(124, "ChaSt", 3 if p > 0 else 4 if p < 0 else 6)
        if bat is not None:
            img.set(124, "ChaState", bat.soc)
            img.set(124, "InBatV", bat.cfg.voltage)


PHYSICS = SunSpec123Physics
