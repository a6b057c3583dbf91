"""Model 802 battery: contactor sequence, SoC integration, tapered limits, alarms, cycles.

Model 802 has no energy accumulator; the battery counts its throughput and serves it as
`NCyc`, equivalent full cycles (discharged Wh / `WHRtg`). Its inverter serves the Wh counters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.simulator.config import SimDeviceConfig
from adapters.simulator.physics.common import (
    SETOP_CONNECT,
    SETOP_DISCONNECT,
    STATE_CONNECTED,
    STATE_DISCONNECTED,
    STATE_INITIALIZING,
    EnergyCounter,
    pick_sf,
    put,
    set_common,
)
from adapters.simulator.registers import SunSpecImage

if TYPE_CHECKING:
    from adapters.simulator.physics.inverter import InverterPhysics

BATTERY_MODELS = (1, 802)
OVER_SOC_MAX_WARNING = 1 << 16
UNDER_SOC_MIN_WARNING = 1 << 14


def taper(soc: float, lo: float, hi: float) -> tuple[float, float]:
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
        self.hb = 0.0  # 802 Hb: simulated seconds, shown modulo 65000
        self.energy = EnergyCounter()
        v = cfg.voltage
        wmax = max(cfg.max_charge_a, cfg.max_discharge_a) * v
        amax = max(cfg.max_charge_a, cfg.max_discharge_a)
        put(
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
                ("A_SF", pick_sf(amax * 1.5)),
                ("AMax_SF", pick_sf(amax, signed=False)),
                ("W_SF", pick_sf(wmax * 1.5)),
            ),
        )
        set_common(img, cfg, "sim-battery")
        put(
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
                ("LocRemCtl", 1),
                ("CtrlHb", 0),
                ("AlmRst", 0),
                ("Typ", 4),
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
        self.publish()

    # -- inputs --------------------------------------------------------------------------
    @property
    def effective_state(self) -> int:
        return self.forced_state if self.forced_state is not None else self.state

    @property
    def connected(self) -> bool:
        return self.effective_state == STATE_CONNECTED

    def limits_w(self) -> tuple[float, float]:
        """(max charge W, max discharge W) the battery allows now (>= 0)."""
        cha, dis = taper(self.soc, self.cfg.taper_low_soc, self.cfg.taper_high_soc)
        v = self.cfg.voltage
        return self.cfg.max_charge_a * cha * v, self.cfg.max_discharge_a * dis * v

    def on_write(self, points: list[tuple[int | str, str]]) -> None:
        for _, name in points:
            if name == "AlmRst" and self.img.get(802, "AlmRst") == 1:
                self.alarm_latched = 0
                self.img.set(802, "AlmRst", 0)
            elif name == "SetOp":
                self._apply_setop()
        self.publish()

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
        self.publish()

    # -- time ----------------------------------------------------------------------------
    def step(self, dt: float) -> None:
        """Advance `dt` simulated seconds (registers change at the next `publish`)."""
        if self.state == STATE_INITIALIZING:
            self.connect_left -= dt
            if self.connect_left <= 0:
                self.state = STATE_CONNECTED
        if not self.connected:
            self.power_w = 0.0
        self.energy.add(self.power_w, dt)
        self.soc -= self.power_w * dt / 3600.0 / self.cfg.capacity_wh * 100.0
        if self.soc >= 100.0:
            self.soc = 100.0
            if self.power_w < 0:
                self.alarm_latched |= OVER_SOC_MAX_WARNING
        if self.soc <= 0.0:
            self.soc = 0.0
            if self.power_w > 0:
                self.alarm_latched |= UNDER_SOC_MIN_WARNING
        self.hb += dt

    def publish(self) -> None:
        """Show the physics state in the registers."""
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
        img.set(802, "Hb", int(self.hb) % 65000)
        img.set(802, "NCyc", int(self.energy.forward_wh / self.cfg.capacity_wh))
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
