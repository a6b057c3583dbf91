"""Controller profile of the rhombus_res125 family: 802 battery + Rhombus RES-125 point map."""

from __future__ import annotations

import math
from typing import Any

from edge.controller.faults import Fault, as_int
from edge.controller.limits import to_device
from edge.controller.profiles import Plan, Profile, WriteFailed

RHOMBUS_FAULT_REGISTERS = (
    "CIUFaultSummary",
    "MIUF1Summary",
    "MIUF2Summary",
    "MIUF3Summary",
    "MIUF4Summary",
    "Shutdowns",  # not checked by the original; a shut-down unit is not delivering power
)


class RhombusRes125Profile(Profile):
    """802 battery + Rhombus RES-125 (point map, model key `res125`): security code, OpMode,
    MaxPowerCommand in kW (or A), and the Heartbeat countdown (B7)."""

    name = "rhombus_res125"
    inverter_model = "res125"
    supports_pf = True
    OPMODE_STOP = 0
    OPMODE_CONSTANT_POWER = 1
    OPMODE_CONSTANT_CURRENT = 2
    OPMODE_RESET_UNIT = 61440
    COMMAND_STEP = 0.1  # MaxPowerCommand's resolution (kW or A) in the res125 point map

    def _unit_w(self) -> float | None:
        """W per MaxPowerCommand unit: kW in POWER mode, battery V in CURRENT mode."""
        if self.s.inverter_command_mode == "POWER":
            return self.s.rhombus_command_unit_w
        return self.battery_v()

    def reset_inverter_alarms(self) -> Plan:
        return [self.put(self.inv, "res125", "OpMode", self.OPMODE_RESET_UNIT, tol=None)]

    def unlock(self) -> Plan:
        return [self.put(self.inv, "res125", "SecurityCode", self.s.security_code_value)]

    def enable_power_mode(self) -> Plan:
        first = [*self.reset_heartbeat(), self.put(self.inv, "res125", "MaxPowerCommand", 0)]
        mode = (
            self.OPMODE_CONSTANT_POWER
            if self.s.inverter_command_mode == "POWER"
            else self.OPMODE_CONSTANT_CURRENT
        )
        return [*first, self.put(self.inv, "res125", "OpMode", mode)]

    def write_power(self, signed_w: float) -> Plan:
        if signed_w == 0:
            cmd = 0.0
        else:
            unit = self._unit_w()
            if unit is None or unit <= 0:
                raise WriteFailed(
                    self.inv, "res125", "MaxPowerCommand", signed_w, "battery V unknown"
                )
            raw = to_device(signed_w, self.s.charge_sign) / unit
            # Toward 0, in the register's steps: a finer value would read back rounded, and an
            # unconfirmed write is a fault (round() first: 0.3 * 10 is 2.9999999999999996).
            steps = math.trunc(round(raw / self.COMMAND_STEP, 6))
            cmd = round(steps * self.COMMAND_STEP, 6)
            cmd = max(-self.s.max_inverter_command, min(self.s.max_inverter_command, cmd))
        tol = max(self.COMMAND_STEP / 2, abs(cmd) * 0.002)
        return [self.put(self.inv, "res125", "MaxPowerCommand", cmd, tol=tol)]

    def inverter_off(self) -> Plan:
        return [self.put(self.inv, "res125", "OpMode", self.OPMODE_STOP)]

    def write_pf(self, pf: float) -> Plan:
        offset = math.copysign(1.0 - abs(pf), pf)
        offset = max(-0.5, min(0.5, offset))
        return [self.put(self.inv, "res125", "PowerFactorOffset", round(offset, 3), tol=0.002)]

    def inverter_rating(self) -> tuple[float | None, float | None]:
        unit = self._unit_w()
        r = None if unit is None else self.s.max_inverter_command * unit
        if self.s.inverter_rating_w is not None:
            r = self.s.inverter_rating_w if r is None else min(r, self.s.inverter_rating_w)
        return r, r

    def inverter_faults(self) -> list[Fault]:
        out = []
        for reg in RHOMBUS_FAULT_REGISTERS:
            v = as_int(self.t.get(self.inv, "res125", reg))
            if v:
                bits = [str(b) for b in range(32) if v >> b & 1]
                out.append(Fault("inverter_fault", f"res125 {reg} = {v} (bits {', '.join(bits)})"))
        for reg in ("GridOffStandaloneOn", "AutoTransition"):
            if as_int(self.t.get(self.inv, "res125", reg)):
                out.append(Fault("islanding", f"res125 {reg} is on"))
        return out

    # -- heartbeat (B7) --------------------------------------------------------------------
    def heartbeat_needs_reset(self) -> bool:
        hb = as_int(self.t.get(self.inv, "res125", "Heartbeat"))
        return hb is not None and 0 < hb <= self.s.inverter_heartbeat_count_limit

    def reset_heartbeat(self) -> Plan:
        # The inverter counts down every 100 ms, so the read-back may already be a few lower.
        count = self.s.initial_inverter_heartbeat_count
        return [self.put(self.inv, "res125", "Heartbeat", count, tol=10)]

    def heartbeat_fault(self, energised_for_s: float) -> Fault | None:
        warn = self.s.inverter_heartbeat_warning_time
        sample = self.t.sample(self.inv, "res125", "Heartbeat")
        if sample is None or as_int(sample.value) is None:
            if energised_for_s > warn:
                return Fault("heartbeat_lost", f"no inverter Heartbeat reading for {warn:g} s")
            return None
        if as_int(sample.value) == 0:
            return Fault("heartbeat_lost", "inverter Heartbeat counted down to 0")
        age = self.t.age(self.inv, "res125", "Heartbeat") or 0.0
        if age > warn:
            return Fault(
                "heartbeat_lost", f"no inverter Heartbeat reading for {age:.0f} s (> {warn:g} s)"
            )
        return None

    def limit_points(self) -> set[tuple[str, str, str]]:
        return super().limit_points()

    def inverter_energised(self) -> dict[str, Any]:
        mode = as_int(self.t.get(self.inv, "res125", "OpMode"))
        cmd = self.t.number(self.inv, "res125", "MaxPowerCommand")
        return {
            "inverter_opmode": mode,
            "inverter_command": cmd,
            "inverter_exporting": mode in (1, 2) and bool(cmd),
        }
