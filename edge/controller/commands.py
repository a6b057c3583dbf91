"""Operator commands: typed bodies, validation, the checks each runs, and the replies.

Every refusal is a `Refused` naming the field and the reason; the states a command is
"allowed in" come from the transition table (machine.allowed_in), never typed again.
"""

from __future__ import annotations

import math
from typing import Any

from edge.controller.context import Answer, ControllerContext
from edge.controller.errors import Refused, short
from edge.controller.machine import St, allowed_in

# recover_soc from `stopped` starts first; asked during the start sequence, it follows it.
RECOVER_PATH = ("start", "contactors_closed", "connected_recover", "recover")


class Commands(ControllerContext):
    def _cmd_get_state(self, body: dict[str, Any]) -> Answer:
        self._fields("get_state", body, set())
        return {**self._reply(), **{k: v for k, v in self.snapshot().items() if k != "state"}}

    def _cmd_start(self, body: dict[str, Any]) -> Answer:
        self._fields("start", body, set())
        self._refuse_in_fault("start")
        if not self.sm.can("start"):
            raise self._not_allowed("start", "start")
        causes = self._fault_causes()
        if causes:
            raise Refused("fault_active", "start: " + "; ".join(f.detail for f in causes))
        self._start("command start")
        return self._after(self._sequence_work, self._reply)

    def _cmd_stop(self, body: dict[str, Any]) -> Answer:
        self._fields("stop", body, set())
        if self.state == St.STOPPING or (self.state == St.FAULT and self._running(self._stop_work)):
            return self._after(self._stop_work, self._reply)
        self._cancel_work()
        self.pending_recovery_w = None
        self.requested_w = 0.0
        self._goto("stop", "command stop")
        return self._after(self._run_stop(), self._reply)

    def _cmd_hold(self, body: dict[str, Any]) -> Answer:
        self._fields("hold", body, {"source", "reason"})
        source = body.get("source", "command")
        if source not in ("command", "fallback"):
            raise Refused(
                "invalid_payload", f"source: {short(source)} must be 'command' or 'fallback'"
            )
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or not 0 < len(reason) <= 200):
            raise Refused("invalid_payload", "reason: expected a string of 1 to 200 characters")
        if source == "fallback" and reason is None:
            raise Refused("invalid_payload", "reason: missing (required with source 'fallback')")
        return self._hold(source, reason)

    def _hold(self, source: str = "command", reason: str | None = None) -> Answer:
        self._refuse_in_fault("hold")
        if not self.sm.can("hold"):
            extra = (
                "; recovery ends by itself at soc_recovered_level, or use stop"
                if self.state == St.SOC_RECOVERY
                else ""
            )
            raise self._not_allowed("hold", "hold", extra=extra)
        self.requested_w = 0.0
        self._select_manual(0.0, source, reason)
        self._goto("hold", f"{source} hold" + (f": {reason}" if reason else ""))
        return self._command_setpoint()

    def _cmd_charge(self, body: dict[str, Any]) -> Answer:
        w, pf = self._power_body("charge", body)
        return self._charge(w, pf)

    def _charge(self, w: float, pf: float | None) -> Answer:
        self._refuse_in_fault("charge")
        if not self.sm.can("charge"):
            raise self._not_allowed("charge", "charge")
        soc = self.p.soc()
        if soc is not None and soc >= self.s.soc_high_limit:
            # The original's rule: a charge above the high limit becomes hold.
            return self._protect_hold(
                f"charge {w:g} W not applied: soc {soc:g} >= soc_high_limit "
                f"{self.s.soc_high_limit:g}",
                event="hold" if self.sm.can("hold") else "recovered",
            )
        self.requested_w = -w
        self._select_manual(-w)
        self._goto("charge", "command charge")
        return self._command_setpoint(pf)

    def _cmd_discharge(self, body: dict[str, Any]) -> Answer:
        w, pf = self._power_body("discharge", body)
        return self._discharge(w, pf)

    def _discharge(self, w: float, pf: float | None) -> Answer:
        self._refuse_in_fault("discharge")
        if self.state == St.SOC_RECOVERY:
            raise Refused(
                "not_allowed_in_state",
                "discharge: refused during soc_recovery (SoC below soc_recovered_level "
                f"{self.s.soc_recovered_level:g})",
            )
        if not self.sm.can("discharge"):
            raise self._not_allowed("discharge", "discharge")
        soc = self.p.soc()
        if soc is not None and soc <= self.s.soc_low_limit:
            return self._protect_hold(
                f"discharge {w:g} W not applied: soc {soc:g} <= soc_low_limit "
                f"{self.s.soc_low_limit:g}",
                event="hold",
            )
        self.requested_w = w
        self._select_manual(w)
        self._goto("discharge", "command discharge")
        return self._command_setpoint(pf)

    def _cmd_recover(self, body: dict[str, Any]) -> Answer:
        self._fields("recover_soc", body, {self._power_key()})
        self._refuse_in_fault("recover_soc")
        if self._power_key() in body:
            w = self._power_value("recover_soc", body)
        else:
            w = self._to_w("recover_soc", self.s.soc_low_recovery_charge_command)
        st = self.state
        if st == St.STOPPED:
            self.pending_recovery_w = w
            self._start("command recover_soc (start, then recover)")
            return self._after(self._sequence_work, self._reply)
        if st in (St.STARTING, St.CONNECTING):
            self.pending_recovery_w = w
            self.reason = "command recover_soc: recovery follows the start sequence"
            self._changed()
            return self._reply()
        if not self.sm.can("recover"):
            raise self._not_allowed("recover_soc", *RECOVER_PATH)
        self.requested_w = -w
        self._goto("recover", "command recover_soc")
        if self._recovery_done():
            return self._end_recovery()
        return self._command_setpoint()

    def _cmd_reset(self, body: dict[str, Any]) -> Answer:
        self._fields("reset", body, set())
        if self.state != St.FAULT:
            raise Refused("not_allowed_in_state", f"reset: nothing latched; state is {self.state}")
        if self._stop_failed and not self._running(self._stop_work):
            # The last stop had a step fail: run it again now; reset only once it completes.
            self._run_stop()
        # bounded: every step has write_timeout_s, and the reply REPLY_WAIT_S
        return self._after(self._stop_work, self._reset)

    def _reset(self) -> Answer:
        if self.state != St.FAULT:  # a stop or reset that raced this one
            raise Refused("not_allowed_in_state", f"reset: nothing latched; state is {self.state}")
        if self._running(self._stop_work):
            raise Refused(
                "fault_active",
                "reset: the stop sequence is still running, so the devices may still be "
                "energised; ask again once it completes",
            )
        if self._stop_failed:
            raise Refused(
                "fault_active",
                "reset: the stop sequence did not complete (a step failed again), so the "
                "devices may still be energised; it is retried every refresh_s",
            )
        causes = self._fault_causes()
        if causes:
            raise Refused(
                "fault_active", "reset: cause still present: " + "; ".join(f.detail for f in causes)
            )
        self.faults = []
        self._energised_since = None
        self._goto("reset", "command reset: fault cleared")
        return self._reply()

    # -- validation ----------------------------------------------------------------------
    def _power_key(self) -> str:
        return "power_w" if self.s.user_command_mode == "POWER" else "current_a"

    def _fields(self, command: str, body: dict[str, Any], allowed: set[str]) -> None:
        unknown = sorted(set(body) - allowed)
        if unknown:
            expect = ", ".join(sorted(allowed)) or "no fields"
            raise Refused(
                "invalid_payload", f"{command}: unknown field {unknown[0]!r} (expected {expect})"
            )

    def _power_body(self, command: str, body: dict[str, Any]) -> tuple[float, float | None]:
        key = self._power_key()
        self._fields(command, body, {key, "pf"})
        if key not in body:
            raise Refused("invalid_payload", f"{key}: missing (required by {command})")
        w = self._power_value(command, body)
        pf = body.get("pf")
        if pf is not None:
            if isinstance(pf, bool) or not isinstance(pf, int | float):
                raise Refused("invalid_payload", f"pf: expected a number, got {type(pf).__name__}")
            if isinstance(pf, float) and not math.isfinite(pf):
                raise Refused("invalid_payload", f"pf: {short(pf)} is not a finite number")
            if not (-1.0 <= pf <= 1.0) or pf == 0:
                raise Refused("out_of_range", f"pf: {short(pf)} must be within [-1, 1] and not 0")
            if float(pf) != 1.0 and not self.p.supports_pf:
                raise Refused("out_of_range", f"pf: profile {self.p.name} supports only pf 1.0")
            pf = float(pf)
        return w, pf

    def _power_value(self, command: str, body: dict[str, Any]) -> float:
        key = self._power_key()
        v = body[key]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise Refused("invalid_payload", f"{key}: expected a number, got {type(v).__name__}")
        if isinstance(v, float) and not math.isfinite(v):
            raise Refused("invalid_payload", f"{key}: {short(v)} is not a finite number")
        if v < 0:
            if self.s.strict_power_sign:
                raise Refused(
                    "out_of_range",
                    f"{key}: {short(v)} is negative; {command} takes a magnitude "
                    "(strict_power_sign)",
                )
            v = abs(v)
        if v > 1e9:
            raise Refused("out_of_range", f"{key}: {short(v)} is beyond any device (max 1e9)")
        w = self._to_w(command, float(v))
        if w > 1e9:  # a current in range can still convert to an impossible power
            raise Refused(
                "out_of_range", f"{key}: {short(v)} is {short(w)} W, beyond any device (max 1e9 W)"
            )
        return w

    def _to_w(self, command: str, value: float) -> float:
        """User units to W: POWER is W already; CURRENT converts with the battery voltage."""
        if self.s.user_command_mode == "POWER":
            return value
        v = self.p.battery_v()
        if v is None or v <= 0:
            raise Refused(
                "out_of_range", f"current_a: battery voltage unknown; cannot convert {command} to W"
            )
        return value * v

    def _refuse_in_fault(self, command: str) -> None:
        if self.state == St.FAULT:
            names = ", ".join(f.code for f in self.faults) or "fault"
            raise Refused(
                "fault_active", f"{command}: fault latched ({names}); clear it with reset"
            )

    def _not_allowed(self, command: str, *events: str, extra: str = "") -> Refused:
        """The refusal, with the states the transition table allows `events` in."""
        return Refused(
            "not_allowed_in_state",
            f"{command}: not allowed in state {self.state} (allowed in {allowed_in(*events)})"
            f"{extra}",
        )

    # -- replies ---------------------------------------------------------------------------
    def _setpoint(self) -> dict[str, float]:
        return {
            "requested_w": round(abs(self.requested_w), 3),
            "applied_w": round(abs(self.applied_w), 3),
        }

    def _reply(self) -> dict[str, Any]:
        return {"state": self.state, "setpoint": self._setpoint()}
