"""Physics of the `rhombus_res125` family (simulator profile `res125`, point map `res125`).

`MaxPowerCommand` in kW, positive discharge, negative charge (the original's `charge_sign`
-1); acted on only when `SecurityCode` = 125 (unlocked), `OpMode` = 1 (power mode),
`Heartbeat` > 0 and no fault summary is set. `Heartbeat` counts down by 1 every 100 ms of
simulated time from what was last written; at 0 the inverter stops. No energy register.
"""

from __future__ import annotations

import math

from adapters.simulator.physics.common import phase_amps
from adapters.simulator.physics.families.base import FamilyPhysics
from adapters.simulator.physics.inverter_registers import init_res125
from adapters.simulator.registers import PointMapImage
from edge.families import by_sim_profile

RES125_UNLOCK_CODE = 125
RES125_OPMODE_POWER = 1
HEARTBEAT_TICK_S = 0.1
# Summary registers an injected inverter_fault may set; all but Warnings trip the unit.
RES125_FAULT_POINTS = tuple(by_sim_profile("res125").fault_points)


class RhombusRes125Physics(FamilyPhysics):
    sim_profile = "res125"

    def init_registers(self) -> None:
        cfg = self.inv.cfg
        self.heartbeat = float(cfg.heartbeat_initial)  # `Heartbeat` counts left
        self.hb_acc = 0.0  # simulated seconds since the last heartbeat count
        self.mb_hb = 0.0  # `ModbusHeartbeat`: simulated seconds
        assert isinstance(self.img, PointMapImage)
        init_res125(self.img, cfg.heartbeat_initial)

    def on_write(self, names: set[str]) -> None:
        if "Heartbeat" in names:
            self.heartbeat = float(self.img.get("res125", "Heartbeat") or 0)
            self.hb_acc = 0.0  # the countdown restarts from the value just written

    def faulted(self) -> bool:
        return any(self.img.get("res125", n) for n in RES125_FAULT_POINTS if n != "Warnings")

    def is_on(self) -> bool:
        g = self.img.get
        return (
            not self.faulted()
            and g("res125", "SecurityCode") == RES125_UNLOCK_CODE
            and g("res125", "OpMode") == RES125_OPMODE_POWER
            and self.heartbeat > 0
        )

    def requested_w(self, wmax: float) -> float:
        return float(self.img.get("res125", "MaxPowerCommand") or 0) * 1000.0

    def tick(self, dt: float) -> None:
        self.hb_acc += dt
        ticks = int(self.hb_acc / HEARTBEAT_TICK_S + 1e-9)
        if ticks:
            self.hb_acc -= ticks * HEARTBEAT_TICK_S
            self.heartbeat = max(0.0, self.heartbeat - ticks)
        self.mb_hb += dt

    def publish(self, p: float) -> None:
        img, bat = self.img, self.inv.battery
        kw, amps = p / 1000.0, phase_amps(p)
        v = bat.cfg.voltage if bat else 800.0
        img.set("res125", "RawGridACPower", kw)
        img.set("res125", "RawDCLinkPower", kw)
        img.set("res125", "DCLinkVoltageCurrentPower", kw)
        img.set("res125", "RawDCCurrent", p / v)
        for ph in "ABC":
            img.set("res125", f"RawPhase{ph}GridCurrentRMS", amps)
        img.set("res125", "UnitStatus", 1 if self.is_on() else 0)
        img.set("res125", "Heartbeat", math.ceil(self.heartbeat))
        img.set("res125", "ModbusHeartbeat", int(self.mb_hb) % 65536)


PHYSICS = RhombusRes125Physics
