"""The setpoint: limits in force, the pipeline, the write (read-back confirmed), the lease."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Any

from edge.controller.context import Answer, ControllerContext
from edge.controller.errors import Refused, short
from edge.controller.limits import OPERATOR_LIMIT, Limits
from edge.controller.machine import ACTIVE, St
from edge.controller.pipeline import Applied, PipelineSettings, apply
from edge.controller.plan import Plan, Unsupported
from edge.controller.runner import Program, Stage
from edge.controller.sequences import SETPOINT, faults_of

log = logging.getLogger(__name__)


class Setpoint(ControllerContext):
    def _compute_limits(self) -> Limits:
        return self.p.limits(self.operator_limit)

    def _bound_label(self, bound: str) -> str:
        """A pipeline bound for `why`, naming the operator limit when it is the one in force."""
        src = {"charge_limit": self.limits.charge_source}.get(
            bound, self.limits.discharge_source if bound == "discharge_limit" else ""
        )
        return f"{bound} ({OPERATOR_LIMIT})" if src == OPERATOR_LIMIT else bound

    def _update_limits(self) -> None:
        new = self._compute_limits()
        if new == self.limits:
            return
        self.limits = new
        self._changed()
        if self.state not in ACTIVE:
            return
        # A lowered limit applies now, not at the next ramp step; a write in flight was
        # computed under the old limits, so it is superseded too.
        if (
            self._running(self._setpoint_work)
            or self.limits.clamp(self.applied_w) != self.applied_w
        ):
            self._spawn_setpoint()

    def _next_step(self) -> float:
        """The value to write now: the request through the pipeline (SoC bounds and backup
        reserve, limits, ramp from the current value), whichever mode or command asked."""
        return self._through_pipeline(self.requested_w).power_w

    def _through_pipeline(self, want_w: float, ramp: bool = True) -> Applied:
        ps = PipelineSettings.of(self.s)
        if not ramp:
            ps = replace(ps, ramp_w_per_s=0.0)
        return apply(want_w, self.site_view(), ps, self.applied_w, self.s.ramp_interval_s)

    def _spawn_setpoint(self, pf: float | None = None, immediate_zero: bool = False) -> Program:
        """Write the setpoint (superseding one being written): the power factor first if
        given, then the power, computed when its write starts so that the limits in force at
        that moment apply, then the controller-side reactive power when due."""
        target = [0.0]

        def power() -> Plan:
            target[0] = 0.0 if immediate_zero else self._next_step()
            return self.p.write_power(target[0])

        def written() -> None:
            self.applied_w = target[0]
            self._last_write = self.clock()

        stages = [Stage("pf", lambda: self.p.write_pf(pf))] if pf is not None else []
        stages += [Stage("power", power, after=written), self._grid_var_stage()]
        self._setpoint_work = self.runner.run(
            SETPOINT, Program("setpoint", stages, on_done=self._setpoint_done)
        )
        return self._setpoint_work

    def _setpoint_done(self, errors: list[Exception]) -> None:
        failed = [e for e in errors if not isinstance(e, Unsupported)]
        if failed:
            self._trip(faults_of(failed), "setpoint write failed")
        elif errors:  # validated before; a subclass may still refuse
            log.warning("%s", errors[0])
        self._changed()

    def _command_setpoint(self, pf: float | None = None) -> Answer:
        def then() -> Answer:
            if self.state == St.FAULT:
                raise Refused("fault_active", f"setpoint not applied: {self.reason}")
            return self._reply()

        return self._after(self._spawn_setpoint(pf), then)

    def _maintain_setpoint(self) -> None:
        """Ramp steps and the lease refresh (rewrite before the device's revert timer)."""
        if (
            self.state not in ACTIVE
            or self._running(self._setpoint_work)
            or self._running(self._sequence_work)
        ):
            return
        since = self.clock() - self._last_write
        ramp_due = self._next_step() != self.applied_w and (
            self.s.ramp_w_per_s <= 0 or since >= self.s.ramp_interval_s
        )
        if ramp_due or since >= self.s.refresh_s or self.grid_var_due():
            self._spawn_setpoint()

    def _protect_hold(self, reason: str, event: str) -> Answer:
        self.requested_w = 0.0
        self._select_manual(0.0)
        self._goto(event, reason)
        return self._after(self._spawn_setpoint(immediate_zero=True), self._reply)


def limit_value(body: dict[str, Any], key: str) -> float | None:
    """One field of cmd/limit: a finite number >= 0 in W, or None (no operator limit)."""
    if key not in body:
        raise Refused("invalid_payload", f"{key}: missing (a number of W, or null for none)")
    v = body[key]
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        got = type(v).__name__
        raise Refused("invalid_payload", f"{key}: expected a number or null, got {got}")
    if isinstance(v, float) and not math.isfinite(v):
        raise Refused("invalid_payload", f"{key}: {short(v)} is not a finite number")
    if v < 0:
        raise Refused("out_of_range", f"{key}: {short(v)} is negative (a limit is a magnitude)")
    if v > 1e9:
        raise Refused("out_of_range", f"{key}: {short(v)} is beyond any device (max 1e9)")
    return float(v)
