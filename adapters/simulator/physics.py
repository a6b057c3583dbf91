"""Device physics: pure logic over a register image, stepped with simulated seconds.

No I/O and no clock here: `step(dt)` advances by `dt` simulated seconds and `on_write()` is
told which points a Modbus client wrote. The site simulator owns the clock.

Sign convention everywhere inside the simulator: positive power = battery discharging =
inverter exporting (SunSpec 701/103 `W`). Setpoints per profile:

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

The meter (203) reads `W` = site load - inverter power: positive = import from the grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from adapters.simulator.config import SimDeviceConfig
from adapters.simulator.registers import Image, PointMapImage, SunSpecImage

STATE_DISCONNECTED = 1
STATE_INITIALIZING = 2
STATE_CONNECTED = 3
STATE_FAULT = 99
SETOP_CONNECT = 1
SETOP_DISCONNECT = 2
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

BATTERY_MODELS = (1, 802)
INVERTER_MODELS = {"sunspec": (1, 701, 702, 704), "legacy": (1, 103, 120, 121, 123, 124)}
METER_MODELS = (1, 203)


def _put(
    setter: Callable[[int | str, str, Any], None],
    model: int | str,
    pairs: Iterable[tuple[str, Any]],
) -> None:
    for name, val in pairs:
        setter(model, name, val)


def pick_sf(max_abs: float, signed: bool = True) -> int:
    """The smallest scale factor >= -3 that keeps `max_abs` within the register range."""
    limit = 32000 if signed else 65000
    sf = -3
    while max_abs / math.pow(10, sf) > limit and sf < 10:
        sf += 1
    return sf


def set_common(img: SunSpecImage, cfg: SimDeviceConfig, md: str) -> None:
    img.set(1, "Mn", "bess-edge")
    img.set(1, "Md", md)
    img.set(1, "Opt", cfg.profile)
    img.set(1, "Vr", "0.1.0")
    img.set(1, "SN", f"SIM-{cfg.name}")
    img.set(1, "DA", cfg.unit_id)


def _taper(soc: float, lo: float, hi: float) -> tuple[float, float]:
    """(charge factor, discharge factor): linear to 0 above `hi` % and below `lo` %."""
    cha = 1.0 if soc <= hi else max(0.0, (100.0 - soc) / (100.0 - hi))
    dis = 1.0 if soc >= lo else max(0.0, soc / lo) if lo > 0 else 1.0
    return cha, dis


class BatteryPhysics:
    """Model 802: contactor sequence, SoC integration, tapered limits, alarms."""

    def __init__(self, cfg: SimDeviceConfig, img: SunSpecImage) -> None:
        self.cfg = cfg
        self.img = img
        self.soc = float(cfg.initial_soc)
        self.state = STATE_DISCONNECTED
        self.forced_state: int | None = None
        self.power_w = 0.0  # set by the inverter, positive = discharge
        self.inverters: list[InverterPhysics] = []  # fed by this battery (contactor trips them)
        self.connect_left = 0.0
        self.alarm_latched = 0  # bits raised by physics or injected with latch: AlmRst clears
        self.alarm_forced = 0  # injected bits: stay until released
        self.hb_acc = 0.0
        v = cfg.voltage
        wmax = max(cfg.max_charge_a, cfg.max_discharge_a) * v
        _put(
            img.set_raw,
            802,
            (
                ("AHRtg_SF", pick_sf(cfg.capacity_wh / v, signed=False)),
                ("WHRtg_SF", pick_sf(cfg.capacity_wh, signed=False)),
                ("WChaDisChaMax_SF", pick_sf(wmax, signed=False)),
                ("DisChaRte_SF", 0),
                ("SoC_SF", -1),
                ("DoD_SF", -1),
                ("SoH_SF", 0),
                ("V_SF", pick_sf(v * 1.2, signed=False) if v * 12 > 65000 else -1),
                ("CellV_SF", -3),
                ("A_SF", pick_sf(max(cfg.max_charge_a, cfg.max_discharge_a) * 1.5)),
                ("AMax_SF", pick_sf(max(cfg.max_charge_a, cfg.max_discharge_a), signed=False)),
                ("W_SF", pick_sf(wmax * 1.5)),
            ),
        )
        set_common(img, cfg, "sim-battery")
        _put(
            img.set,
            802,
            (
                ("AHRtg", cfg.capacity_wh / v),
                ("WHRtg", cfg.capacity_wh),
                ("SoCMax", 100.0),
                ("SoCMin", 0.0),
                ("SocRsvMax", 95.0),
                ("SoCRsvMin", 5.0),
                ("SoH", 100),
                ("NCyc", 0),
                ("LocRemCtl", 1),
                ("Hb", 0),
                ("CtrlHb", 0),
                ("AlmRst", 0),
                ("Typ", 4),
                ("Evt1", 0),
                ("Evt2", 0),
                ("V", v),
                ("VMax", v * 1.1),
                ("VMin", v * 0.85),
                ("CellVMax", 3.35),
                ("CellVMin", 3.25),
                ("CellVAvg", 3.3),
                ("ReqInvState", 0),
                ("SetOp", SETOP_DISCONNECT),
                ("SetInvState", 1),
            ),
        )
        self._publish()

    # -- inputs --------------------------------------------------------------------------
    @property
    def effective_state(self) -> int:
        return self.forced_state if self.forced_state is not None else self.state

    @property
    def connected(self) -> bool:
        return self.effective_state == STATE_CONNECTED

    def limits_w(self) -> tuple[float, float]:
        """(max charge W, max discharge W) the battery allows now (>= 0)."""
        cha, dis = _taper(self.soc, self.cfg.taper_low_soc, self.cfg.taper_high_soc)
        v = self.cfg.voltage
        return self.cfg.max_charge_a * cha * v, self.cfg.max_discharge_a * dis * v

    def on_write(self, points: list[tuple[int | str, str]]) -> None:
        for _, name in points:
            if name == "AlmRst" and self.img.get(802, "AlmRst") == 1:
                self.alarm_latched = 0
                self.img.set(802, "AlmRst", 0)
            elif name == "SetOp":
                self._apply_setop()
        self._publish()

    def _apply_setop(self) -> None:
        op = self.img.get(802, "SetOp")
        if op == SETOP_CONNECT and self.state == STATE_DISCONNECTED:
            self.state = STATE_INITIALIZING
            self.connect_left = self.cfg.connect_delay_s
            if self.connect_left <= 0:
                self.state = STATE_CONNECTED
        elif op == SETOP_DISCONNECT:
            self.state = STATE_DISCONNECTED
            self.trip_inverters()

    def trip_inverters(self) -> None:
        """Contactors open: power stops now, not at the next step."""
        if not self.connected:
            self.power_w = 0.0
            for inv in self.inverters:
                inv.trip()

    def set_soc(self, soc: float) -> None:
        self.soc = max(0.0, min(100.0, float(soc)))
        self._publish()

    # -- time ----------------------------------------------------------------------------
    def step(self, dt: float) -> None:
        if self.state == STATE_INITIALIZING:
            self.connect_left -= dt
            if self.connect_left <= 0:
                self.state = STATE_CONNECTED
        if not self.connected:
            self.power_w = 0.0
        cap = self.cfg.capacity_wh
        self.soc -= self.power_w * dt / 3600.0 / cap * 100.0
        if self.soc >= 100.0:
            self.soc = 100.0
            if self.power_w < 0:
                self.alarm_latched |= 1 << 16  # OVER_SOC_MAX_WARNING
        if self.soc <= 0.0:
            self.soc = 0.0
            if self.power_w > 0:
                self.alarm_latched |= 1 << 14  # UNDER_SOC_MIN_WARNING
        self.hb_acc += dt
        if self.hb_acc >= 1.0:
            hb = int(self.img.get(802, "Hb") or 0)
            self.img.set(802, "Hb", (hb + int(self.hb_acc)) % 65000)
            self.hb_acc -= int(self.hb_acc)
        self._publish()

    def _publish(self) -> None:
        img, v = self.img, self.cfg.voltage
        cha_w, dis_w = self.limits_w()
        img.set(802, "SoC", self.soc)
        img.set(802, "DoD", 100.0 - self.soc)
        img.set(802, "State", self.effective_state)
        img.set(802, "Evt1", self.alarm_latched | self.alarm_forced)
        img.set(802, "AChaMax", cha_w / v)
        img.set(802, "ADisChaMax", dis_w / v)
        img.set(802, "WChaRteMax", cha_w)
        img.set(802, "WDisChaRteMax", dis_w)
        img.set(802, "W", self.power_w)
        img.set(802, "A", self.power_w / v)
        if self.soc >= 100.0:
            chast = 5
        elif self.soc <= 0.0:
            chast = 2
        elif self.power_w > 0:
            chast = 3
        elif self.power_w < 0:
            chast = 4
        else:
            chast = 6 if self.connected else 1
        img.set(802, "ChaSt", chast)


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
        self.hb_acc = 0.0
        self.hb_remainder = 0.0
        self.mb_hb_acc = 0.0
        if isinstance(img, SunSpecImage):
            set_common(img, cfg, f"sim-inverter-{cfg.profile}")
            if self.profile == "sunspec":
                self._init_sunspec(img)
            else:
                self._init_legacy(img)
        else:
            self._init_res125(img)
        self._publish()

    # -- init ----------------------------------------------------------------------------
    def _init_sunspec(self, img: SunSpecImage) -> None:
        r = self.cfg.rating_w
        wsf = pick_sf(r * 1.5)
        _put(
            img.set_raw,
            701,
            (
                ("W_SF", wsf),
                ("VA_SF", wsf),
                ("Var_SF", wsf),
                ("PF_SF", -3),
                ("A_SF", -1),
                ("V_SF", -1),
                ("Hz_SF", -2),
                ("TotWh_SF", 0),
                ("TotVarh_SF", 0),
                ("Tmp_SF", -1),
            ),
        )
        _put(
            img.set_raw,
            702,
            (
                ("W_SF", wsf),
                ("PF_SF", -3),
                ("VA_SF", wsf),
                ("Var_SF", wsf),
                ("V_SF", -1),
                ("A_SF", -1),
                ("S_SF", 0),
            ),
        )
        _put(
            img.set_raw,
            704,
            (
                ("PF_SF", -3),
                ("WMaxLimPct_SF", -1),
                ("WSet_SF", 0),
                ("WSetPct_SF", -1),
                ("VarSet_SF", 0),
                ("VarSetPct_SF", -1),
            ),
        )
        _put(
            img.set,
            701,
            (
                ("ACType", 2),
                ("St", 1),
                ("InvSt", 7),
                ("ConnSt", 1),
                ("Alrm", 0),
                ("DERMode", 1),
                ("Hz", 60.0),
                ("LLV", 480.0),
                ("LNV", 277.0),
                ("TmpCab", 30.0),
                ("TmpSnk", 35.0),
                ("TotWhInj", 0),
                ("TotWhAbs", 0),
                ("ThrotPct", 0),
                ("ThrotSrc", 0),
            ),
        )
        _put(
            img.set,
            702,
            (
                ("WMaxRtg", r),
                ("VAMaxRtg", r),
                ("WChaRteMaxRtg", r),
                ("WDisChaRteMaxRtg", r),
                ("VNomRtg", 480.0),
                ("WMax", r),
                ("VAMax", r),
                ("WChaRteMax", r),
                ("WDisChaRteMax", r),
                ("VNom", 480.0),
                ("CtrlModes", 0),
            ),
        )
        _put(
            img.set,
            704,
            (
                ("WMaxLimPctEna", 0),
                ("WMaxLimPct", 100.0),
                ("WMaxLimPctRvrt", 100.0),
                ("WMaxLimPctEnaRvrt", 0),
                ("WMaxLimPctRvrtTms", 0),
                ("WMaxLimPctRvrtRem", 0),
                ("WSetEna", 0),
                ("WSetMod", 1),
                ("WSet", 0),
                ("WSetRvrt", 0),
                ("WSetPct", 0.0),
                ("WSetPctRvrt", 0.0),
                ("WSetEnaRvrt", 0),
                ("WSetRvrtTms", 0),
                ("WSetRvrtRem", 0),
                ("WRmp", 0),
                ("AntiIslEna", 0),
            ),
        )

    def _init_legacy(self, img: SunSpecImage) -> None:
        r = self.cfg.rating_w
        wsf = pick_sf(r * 1.5)
        _put(
            img.set_raw,
            103,
            (
                ("A_SF", -1),
                ("V_SF", -1),
                ("W_SF", wsf),
                ("Hz_SF", -2),
                ("VA_SF", wsf),
                ("VAr_SF", wsf),
                ("PF_SF", -3),
                ("WH_SF", 0),
                ("DCA_SF", -1),
                ("DCV_SF", -1),
                ("DCW_SF", wsf),
                ("Tmp_SF", -1),
            ),
        )
        _put(
            img.set_raw,
            120,
            (
                ("WRtg_SF", wsf),
                ("VARtg_SF", wsf),
                ("VArRtg_SF", wsf),
                ("ARtg_SF", -1),
                ("PFRtg_SF", -3),
                ("WHRtg_SF", 0),
                ("AhrRtg_SF", 0),
                ("MaxChaRte_SF", wsf),
                ("MaxDisChaRte_SF", wsf),
            ),
        )
        _put(
            img.set_raw,
            121,
            (
                ("WMax_SF", wsf),
                ("VRef_SF", -1),
                ("VRefOfs_SF", -1),
                ("VMinMax_SF", -1),
                ("VAMax_SF", wsf),
                ("VArMax_SF", wsf),
                ("WGra_SF", 0),
                ("PFMin_SF", -3),
                ("MaxRmpRte_SF", 0),
                ("ECPNomHz_SF", -2),
            ),
        )
        _put(img.set_raw, 123, (("WMaxLimPct_SF", -1), ("OutPFSet_SF", -3), ("VArPct_SF", -1)))
        _put(
            img.set_raw,
            124,
            (
                ("WChaMax_SF", wsf),
                ("WChaDisChaGra_SF", 0),
                ("VAChaMax_SF", wsf),
                ("MinRsvPct_SF", -1),
                ("ChaState_SF", -1),
                ("StorAval_SF", 0),
                ("InBatV_SF", -1),
                ("InOutWRte_SF", -1),
            ),
        )
        _put(
            img.set,
            103,
            (
                ("Hz", 60.0),
                ("PhVphA", 277.0),
                ("PhVphB", 277.0),
                ("PhVphC", 277.0),
                ("St", 8),
                ("Evt1", 0),
                ("Evt2", 0),
                ("WH", 1),
            ),
        )
        _put(
            img.set,
            120,
            (("DERTyp", 82), ("WRtg", r), ("VARtg", r), ("MaxChaRte", r), ("MaxDisChaRte", r)),
        )
        _put(img.set, 121, (("WMax", r), ("VRef", 480.0), ("VAMax", r), ("ECPNomHz", 60.0)))
        _put(
            img.set,
            123,
            (
                ("Conn", 1),
                ("WMaxLimPct", 100.0),
                ("WMaxLim_Ena", 0),
                ("Conn_RvrtTms", 0),
                ("WMaxLimPct_RvrtTms", 0),
            ),
        )
        _put(
            img.set,
            124,
            (
                ("WChaMax", r),
                ("StorCtl_Mod", 0),
                ("OutWRte", 0.0),
                ("InWRte", 0.0),
                ("InOutWRte_RvrtTms", 0),
                ("ChaSt", 6),
            ),
        )

    def _init_res125(self, img: PointMapImage) -> None:
        p = self.profile
        _put(
            img.set,
            p,
            (
                ("DCLinkVoltage", 800.0),
                ("DCInputVoltage", 800.0),
                ("GridFrequency", 60.0),
                ("HeatSinkTemperature", 35.0),
                ("AmbientTemperature", 25.0),
                ("PhaseAGridVoltageRMS", 277.0),
                ("PhaseBGridVoltageRMS", 277.0),
                ("PhaseCGridVoltageRMS", 277.0),
                ("Heartbeat", self.cfg.heartbeat_initial),
                ("OverVoltageLimit1", 110.0),
                ("OverVoltageLimit2", 120.0),
                ("UnderVoltageLimit1", 88.0),
                ("UnderVoltageLimit2", 50.0),
                ("OverFrequencyLimit1", 60.5),
                ("UnderFrequencyLimit1", 59.3),
                ("ReconnectDelay", 300),
                ("RandomNumber", 4242),
            ),
        )

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
                and float(g("res125", "Heartbeat") or 0) > 0
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

    def requested_w(self) -> float:
        """The setpoint the registers ask for now (W, positive discharge), before limits."""
        img, wmax = self.img, self.wmax()
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

    def limits_w(self) -> tuple[float, float]:
        """(max charge W, max discharge W) now: rating and the battery's limits."""
        r = self.wmax()
        if self.battery is None:
            return r, r
        bc, bd = self.battery.limits_w()
        return min(r, bc), min(r, bd)

    # -- time ----------------------------------------------------------------------------
    def step(self, dt: float) -> None:
        self._tick_timers(dt * self.timer_rate)
        if self.profile == "res125":
            self._tick_heartbeat(dt)
        energised = self.is_on() and (self.battery is None or self.battery.connected)
        if not energised:
            self.target_w = 0.0
            self.power_w = 0.0  # contactor open or inverter off: no ramp down
        else:
            cha, dis = self.limits_w()
            self.target_w = max(-cha, min(dis, self.requested_w()))
            # Limits bind at once (a BMS does not wait for a ramp); setpoint changes ramp.
            self.power_w = max(-cha, min(dis, self.power_w))
            delta = self.target_w - self.power_w
            maxstep = self.cfg.ramp_w_per_s * dt
            self.power_w += max(-maxstep, min(maxstep, delta))
        if self.battery is not None:
            self.battery.power_w = self.power_w
        self._publish(dt)

    def trip(self) -> None:
        """Stop at once (contactor opened, fault): no ramp down."""
        self.power_w = 0.0
        self.target_w = 0.0
        if self.battery is not None:
            self.battery.power_w = 0.0
        self._publish()
        if self.battery is not None:
            self.battery._publish()

    def _tick_timers(self, dt: float) -> None:
        img = self.img
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
        if self.profile == "sunspec":
            img.set(704, "WSetRvrtRem", math.ceil(self.wset_timer.left or 0))
            img.set(704, "WMaxLimPctRvrtRem", math.ceil(self.wmaxlim_timer.left or 0))

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
        img = self.img
        self.hb_acc += dt
        ticks = int(self.hb_acc / HEARTBEAT_TICK_S + 1e-9)
        if ticks:
            self.hb_acc -= ticks * HEARTBEAT_TICK_S
            hb = int(img.get("res125", "Heartbeat") or 0)
            img.set("res125", "Heartbeat", max(0, hb - ticks))
        self.mb_hb_acc += dt
        if self.mb_hb_acc >= 1.0:
            n = int(self.mb_hb_acc)
            self.mb_hb_acc -= n
            mb = int(img.get("res125", "ModbusHeartbeat") or 0)
            img.set("res125", "ModbusHeartbeat", (mb + n) % 65536)

    def _publish(self, dt: float = 0.0) -> None:
        img, p = self.img, self.power_w
        on = self.is_on()
        if self.profile == "sunspec":
            img.set(701, "W", p)
            img.set(701, "VA", abs(p))
            img.set(701, "Var", 0)
            img.set(701, "PF", 1.0)
            img.set(701, "A", abs(p) / (480.0 * math.sqrt(3)))
            # An injected fault changes only the injected register (and stops power), so a
            # test of one detection path cannot pass through another one.
            if "St" not in self.fault_forced:
                img.set(701, "St", 1)
            if "InvSt" not in self.fault_forced:
                img.set(701, "InvSt", 3 if p else 7)
            self._acc(701, "TotWhInj", "TotWhAbs", p, dt)
        elif self.profile == "legacy":
            img.set(103, "W", p)
            img.set(103, "VA", abs(p))
            img.set(103, "VAr", 0)
            img.set(103, "PF", 1.0)
            img.set(103, "A", abs(p) / (480.0 * math.sqrt(3)))
            img.set(103, "DCW", p)
            img.set(103, "DCV", self.battery.cfg.voltage if self.battery else 800.0)
            img.set(103, "DCA", abs(p) / (self.battery.cfg.voltage if self.battery else 800.0))
            if "St" not in self.fault_forced:
                img.set(103, "St", 4 if p else 8)
            img.set(124, "ChaSt", 3 if p > 0 else 4 if p < 0 else 6)
            if self.battery is not None:
                img.set(124, "ChaState", self.battery.soc)
                img.set(124, "InBatV", self.battery.cfg.voltage)
        else:
            kw = p / 1000.0
            img.set("res125", "RawGridACPower", kw)
            img.set("res125", "RawDCLinkPower", kw)
            img.set("res125", "DCLinkVoltageCurrentPower", kw)
            v = self.battery.cfg.voltage if self.battery else 800.0
            img.set("res125", "RawDCCurrent", p / v)
            amps = abs(p) / (480.0 * math.sqrt(3))
            for ph in "ABC":
                img.set("res125", f"RawPhase{ph}GridCurrentRMS", amps)
            img.set("res125", "UnitStatus", 1 if on else 0)

    def _acc(self, model: int, inj: str, absb: str, p: float, dt: float) -> None:
        if dt <= 0 or p == 0:
            return
        name = inj if p > 0 else absb
        cur = float(self.img.get(model, name) or 0)
        self.img.set(model, name, cur + abs(p) * dt / 3600.0)


class MeterPhysics:
    """Model 203 at the point of connection: load minus what the inverters export."""

    def __init__(
        self, cfg: SimDeviceConfig, img: SunSpecImage, inverters: list[InverterPhysics]
    ) -> None:
        self.cfg = cfg
        self.img = img
        self.inverters = inverters
        self.t = 0.0
        self.imp_wh = 0.0
        self.exp_wh = 0.0
        set_common(img, cfg, "sim-meter")
        peak = max([abs(cfg.load_w)] + [abs(w) for _, w in cfg.load_profile or []])
        peak += sum(i.cfg.rating_w for i in inverters)
        wsf = pick_sf(peak)
        _put(
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
        _put(
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
        self._publish(0.0)

    def load_w(self, t: float) -> float:
        """Site load at simulated time `t`: constant, or the profile stepped and repeated."""
        prof = self.cfg.load_profile
        if not prof:
            return self.cfg.load_w
        period = prof[-1][0] if prof[-1][0] > 0 else 1.0
        tt = t % period if len(prof) > 1 else t
        w = prof[0][1]
        for ts, pw in prof:
            if ts <= tt:
                w = pw
        return w

    def on_write(self, points: list[tuple[int | str, str]]) -> None:
        """A meter has no writable physics inputs."""

    def step(self, dt: float) -> None:
        self.t += dt
        self._publish(dt)

    def _publish(self, dt: float) -> None:
        w = self.load_w(self.t) - sum(i.power_w for i in self.inverters)
        if w > 0:
            self.imp_wh += w * dt / 3600.0
        else:
            self.exp_wh += -w * dt / 3600.0
        img = self.img
        img.set(203, "W", w)
        for ph in ("WphA", "WphB", "WphC"):
            img.set(203, ph, w / 3)
        img.set(203, "VA", abs(w))
        img.set(203, "VAR", 0)
        img.set(203, "PF", 1.0)
        img.set(203, "A", abs(w) / (480.0 * math.sqrt(3)))
        # acc32 0 means "not implemented": start the registers at 1 Wh.
        img.set(203, "TotWhImp", 1 + int(self.imp_wh))
        img.set(203, "TotWhExp", 1 + int(self.exp_wh))
