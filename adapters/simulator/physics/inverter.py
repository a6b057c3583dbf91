"""Battery inverter: follows its setpoint within rating and battery limits, with a ramp.

Setpoints per profile (positive = discharge = export, topics.md "Power signs"):

- sunspec (704): `WSetEna`=1 and `WSetMod`=1 (WATTS): `WSet` in W, positive discharge,
  negative charge; `WSetMod`=0 (W_MAX_PCT): `WSetPct` in % of 702 `WMax`, same signs.
  `WMaxLimPctEna`=1 caps |P| at `WMaxLimPct` % of `WMax`. `WSetRvrtTms` > 0: without a new
  write of `WSetEna`/`WSet`/`WSetPct` within that many clock seconds the setpoint is dropped
  (`WSetEna`=0, `WSet`=0, `WSetPct`=0); `WSetRvrtRem` shows the seconds left.
- legacy (123/124): `StorCtl_Mod` bit 1 (DISCHARGE): +`OutWRte` % of 121 `WMax`; bit 0
  (CHARGE): -`InWRte` % of 124 `WChaMax` (both bits: the sum). 123 `WMaxLim_Ena`=1 caps |P|
  at `WMaxLimPct` % of `WMax`. 123 `Conn`=0 turns the inverter off. `InOutWRte_RvrtTms` drops
  `StorCtl_Mod`/`InWRte`/`OutWRte` to 0, `WMaxLimPct_RvrtTms` disables the cap, when not
  refreshed in time.
- res125: `MaxPowerCommand` in kW, positive discharge, negative charge (the original's
  `charge_sign` -1); acted on only when `SecurityCode` = 125 (unlocked), `OpMode` = 1 (power
  mode), `Heartbeat` > 0 and no fault summary is set. `Heartbeat` counts down by 1 every
  100 ms of simulated time from what was last written; at 0 the inverter stops.

Energy: 701 `TotWhInj` (discharge) / `TotWhAbs` (charge); 103 `WH` (discharge). The RES-125
point map has no energy register.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from adapters.simulator.config import SimDeviceConfig
from adapters.simulator.physics.battery import BatteryPhysics
from adapters.simulator.physics.common import EnergyCounter, phase_amps, set_common
from adapters.simulator.physics.inverter_registers import init_legacy, init_res125, init_sunspec
from adapters.simulator.registers import Image, SunSpecImage

RES125_UNLOCK_CODE = 125
RES125_OPMODE_POWER = 1
HEARTBEAT_TICK_S = 0.1
# RES-125 summary registers an injected inverter_fault may set; all but Warnings trip the unit.
RES125_FAULT_POINTS = (
    "CIUFaultSummary",
    "MIUF1Summary",
    "MIUF2Summary",
    "MIUF3Summary",
    "MIUF4Summary",
    "Warnings",
    "Shutdowns",
)
INVERTER_MODELS = {"sunspec": (1, 701, 702, 704), "legacy": (1, 103, 120, 121, 123, 124)}


@dataclass
class _Timer:
    """A revert timer: `left` seconds until the setpoint is dropped (None = not armed)."""

    left: float | None = None


class InverterPhysics:
    """Follows the setpoint within rating and battery limits, with a ramp."""

    def __init__(
        self,
        cfg: SimDeviceConfig,
        img: Image,
        battery: BatteryPhysics | None,
        time_scale: float = 1.0,
    ) -> None:
        self.cfg = cfg
        self.img = img
        self.battery = battery
        # Revert timers guard the link to the controller, which lives in real time: they
        # count clock seconds (simulated / time_scale), so a lease refreshed on time by a
        # real-time controller does not lapse because energy runs fast.
        self.timer_rate = 1.0 / time_scale
        if battery is not None:
            battery.inverters.append(self)
        self.profile = cfg.profile
        self.power_w = 0.0
        self.target_w = 0.0
        self.fault_forced: dict[str, int] = {}
        self.wset_timer = _Timer()
        self.wmaxlim_timer = _Timer()
        self.inout_timer = _Timer()
        self.energy = EnergyCounter()
        self.heartbeat = float(cfg.heartbeat_initial)  # res125 `Heartbeat` counts left
        self.hb_acc = 0.0  # simulated seconds since the last heartbeat count
        self.mb_hb = 0.0  # res125 `ModbusHeartbeat`: simulated seconds
        if isinstance(img, SunSpecImage):
            set_common(img, cfg, f"sim-inverter-{cfg.profile}")
            if self.profile == "sunspec":
                init_sunspec(img, cfg.rating_w)
            else:
                init_legacy(img, cfg.rating_w)
        else:
            init_res125(img, cfg.heartbeat_initial)
        self.publish()

    # -- inputs --------------------------------------------------------------------------
    def on_write(self, points: list[tuple[int | str, str]]) -> None:
        names = {n for _, n in points}
        if self.profile == "sunspec":
            if names & {"WSetEna", "WSet", "WSetPct", "WSetMod", "WSetRvrtTms"}:
                self.wset_timer.left = self._tms(704, "WSetRvrtTms")
            if names & {"WMaxLimPctEna", "WMaxLimPct", "WMaxLimPctRvrtTms"}:
                self.wmaxlim_timer.left = self._tms(704, "WMaxLimPctRvrtTms")
        elif self.profile == "legacy":
            if names & {"StorCtl_Mod", "InWRte", "OutWRte", "InOutWRte_RvrtTms"}:
                self.inout_timer.left = self._tms(124, "InOutWRte_RvrtTms")
            if names & {"WMaxLimPct", "WMaxLim_Ena", "WMaxLimPct_RvrtTms"}:
                self.wmaxlim_timer.left = self._tms(123, "WMaxLimPct_RvrtTms")
        elif "Heartbeat" in names:
            self.heartbeat = float(self.img.get("res125", "Heartbeat") or 0)
            self.hb_acc = 0.0  # the countdown restarts from the value just written

    def _tms(self, model: int, point: str) -> float | None:
        v = self.img.get(model, point)
        return float(v) if isinstance(v, (int, float)) and v > 0 else None

    def faulted(self) -> bool:
        img = self.img
        if self.profile == "sunspec":
            return (
                bool(img.get(701, "Alrm"))
                or self.fault_forced.get("St") == 0
                or self.fault_forced.get("InvSt") in (0, 6)
            )
        if self.profile == "legacy":
            return bool(img.get(103, "Evt1")) or self.fault_forced.get("St") in (1, 7)
        return any(img.get("res125", n) for n in RES125_FAULT_POINTS if n != "Warnings")

    def is_on(self) -> bool:
        if self.faulted():
            return False
        if self.profile == "legacy":
            return self.img.get(123, "Conn") == 1
        if self.profile == "res125":
            g = self.img.get
            return (
                g("res125", "SecurityCode") == RES125_UNLOCK_CODE
                and g("res125", "OpMode") == RES125_OPMODE_POWER
                and self.heartbeat > 0
            )
        return True

    def wmax(self) -> float:
        img = self.img
        if self.profile == "sunspec":
            v = img.get(702, "WMax")
        elif self.profile == "legacy":
            v = img.get(121, "WMax")
        else:
            v = None
        return (
            min(float(v), self.cfg.rating_w) if isinstance(v, (int, float)) else self.cfg.rating_w
        )

    def requested_w(self, wmax: float | None = None) -> float:
        """The setpoint the registers ask for now (W, positive discharge), before limits."""
        img = self.img
        wmax = self.wmax() if wmax is None else wmax
        req = 0.0
        if self.profile == "sunspec":
            if img.get(704, "WSetEna") == 1:
                if img.get(704, "WSetMod") == 1:
                    req = float(img.get(704, "WSet") or 0)
                else:
                    req = float(img.get(704, "WSetPct") or 0) / 100.0 * wmax
            if img.get(704, "WMaxLimPctEna") == 1:
                cap = float(img.get(704, "WMaxLimPct") or 0) / 100.0 * wmax
                req = max(-cap, min(cap, req))
        elif self.profile == "legacy":
            mod = int(img.get(124, "StorCtl_Mod") or 0)
            if mod & 0b10:
                req += float(img.get(124, "OutWRte") or 0) / 100.0 * wmax
            if mod & 0b01:
                wcha = float(img.get(124, "WChaMax") or wmax)
                req -= float(img.get(124, "InWRte") or 0) / 100.0 * wcha
            if img.get(123, "WMaxLim_Ena") == 1:
                cap = float(img.get(123, "WMaxLimPct") or 0) / 100.0 * wmax
                req = max(-cap, min(cap, req))
        else:
            req = float(img.get("res125", "MaxPowerCommand") or 0) * 1000.0
        return req

    def limits_w(self, wmax: float | None = None) -> tuple[float, float]:
        """(max charge W, max discharge W) now: rating and the battery's limits."""
        r = self.wmax() if wmax is None else wmax
        if self.battery is None:
            return r, r
        bc, bd = self.battery.limits_w()
        return min(r, bc), min(r, bd)

    # -- time ----------------------------------------------------------------------------
    def step(self, dt: float) -> None:
        """Advance `dt` simulated seconds (registers change at the next `publish`)."""
        self._tick_timers(dt * self.timer_rate)
        if self.profile == "res125":
            self._tick_heartbeat(dt)
        energised = self.is_on() and (self.battery is None or self.battery.connected)
        if not energised:
            self.target_w = 0.0
            self.power_w = 0.0  # contactor open or inverter off: no ramp down
        else:
            wmax = self.wmax()
            cha, dis = self.limits_w(wmax)
            self.target_w = max(-cha, min(dis, self.requested_w(wmax)))
            # Limits bind at once (a BMS does not wait for a ramp); setpoint changes ramp.
            self.power_w = max(-cha, min(dis, self.power_w))
            delta = self.target_w - self.power_w
            maxstep = self.cfg.ramp_w_per_s * dt
            self.power_w += max(-maxstep, min(maxstep, delta))
        if self.battery is not None:
            self.battery.power_w = self.power_w
        self.energy.add(self.power_w, dt)

    def trip(self) -> None:
        """Stop at once (contactor opened, fault): no ramp down."""
        self.power_w = 0.0
        self.target_w = 0.0
        if self.battery is not None:
            self.battery.power_w = 0.0
        self.publish()
        if self.battery is not None:
            self.battery.publish()

    def _tick_timers(self, dt: float) -> None:
        for timer, expire in (
            (self.wset_timer, self._revert_wset),
            (self.wmaxlim_timer, self._revert_wmaxlim),
            (self.inout_timer, self._revert_inout),
        ):
            if timer.left is None:
                continue
            timer.left -= dt
            if timer.left <= 0:
                timer.left = None
                expire()

    def _revert_wset(self) -> None:
        self.img.set(704, "WSetEna", 0)
        self.img.set(704, "WSet", 0)
        self.img.set(704, "WSetPct", 0)

    def _revert_wmaxlim(self) -> None:
        if self.profile == "sunspec":
            self.img.set(704, "WMaxLimPctEna", 0)
        else:
            self.img.set(123, "WMaxLim_Ena", 0)

    def _revert_inout(self) -> None:
        self.img.set(124, "StorCtl_Mod", 0)
        self.img.set(124, "InWRte", 0)
        self.img.set(124, "OutWRte", 0)

    def _tick_heartbeat(self, dt: float) -> None:
        self.hb_acc += dt
        ticks = int(self.hb_acc / HEARTBEAT_TICK_S + 1e-9)
        if ticks:
            self.hb_acc -= ticks * HEARTBEAT_TICK_S
            self.heartbeat = max(0.0, self.heartbeat - ticks)
        self.mb_hb += dt

    def publish(self) -> None:
        """Show the physics state in the registers."""
        img, p = self.img, self.power_w
        amps = phase_amps(p)
        if self.profile == "sunspec":
            img.set(701, "W", p)
            img.set(701, "VA", abs(p))
            img.set(701, "Var", 0)
            img.set(701, "PF", 1.0)
            img.set(701, "A", amps)
            # An injected fault changes only the injected register (and stops power), so a
            # test of one detection path cannot pass through another one.
            if "St" not in self.fault_forced:
                img.set(701, "St", 1)
            if "InvSt" not in self.fault_forced:
                img.set(701, "InvSt", 3 if p else 7)
            img.set(701, "TotWhInj", int(self.energy.forward_wh))
            img.set(701, "TotWhAbs", int(self.energy.reverse_wh))
            img.set(704, "WSetRvrtRem", math.ceil(self.wset_timer.left or 0))
            img.set(704, "WMaxLimPctRvrtRem", math.ceil(self.wmaxlim_timer.left or 0))
        elif self.profile == "legacy":
            v = self.battery.cfg.voltage if self.battery else 800.0
            img.set(103, "W", p)
            img.set(103, "VA", abs(p))
            img.set(103, "VAr", 0)
            img.set(103, "PF", 1.0)
            img.set(103, "A", amps)
            img.set(103, "DCW", p)
            img.set(103, "DCV", v)
            img.set(103, "DCA", abs(p) / v)
            img.set(103, "WH", 1 + int(self.energy.forward_wh))  # acc32: 0 = not implemented
            if "St" not in self.fault_forced:
                img.set(103, "St", 4 if p else 8)
            img.set(124, "ChaSt", 3 if p > 0 else 4 if p < 0 else 6)
            if self.battery is not None:
                img.set(124, "ChaState", self.battery.soc)
                img.set(124, "InBatV", self.battery.cfg.voltage)
        else:
            kw = p / 1000.0
            v = self.battery.cfg.voltage if self.battery else 800.0
            img.set("res125", "RawGridACPower", kw)
            img.set("res125", "RawDCLinkPower", kw)
            img.set("res125", "DCLinkVoltageCurrentPower", kw)
            img.set("res125", "RawDCCurrent", p / v)
            for ph in "ABC":
                img.set("res125", f"RawPhase{ph}GridCurrentRMS", amps)
            img.set("res125", "UnitStatus", 1 if self.is_on() else 0)
            img.set("res125", "Heartbeat", math.ceil(self.heartbeat))
            img.set("res125", "ModbusHeartbeat", int(self.mb_hb) % 65536)
