"""The setpoint: limits in force, the pipeline, the write (read-back confirmed), the lease."""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import replace
from typing import Any

from edge.controller.context import REPLY_WAIT_S, ControllerContext
from edge.controller.errors import Refused, short
from edge.controller.limits import OPERATOR_LIMIT, Limits, compute_limits
from edge.controller.machine import ACTIVE, St
from edge.controller.pipeline import Applied, PipelineSettings, apply
from edge.controller.profiles import Unsupported, WriteFailed

log = logging.getLogger(__name__)


class Setpoint(ControllerContext):
    def _compute_limits(self) -> Limits:
        b = self.p.battery_limits()
        inv_c, inv_d = self.p.inverter_rating()
        return compute_limits(
            battery_v=b["battery_v"],
            a_cha_max=b["a_cha_max"],
            a_discha_max=b["a_discha_max"],
            w_cha_rte_max=b["w_cha_rte_max"],
            w_discha_rte_max=b["w_discha_rte_max"],
            inverter_charge_w=inv_c,
            inverter_discharge_w=inv_d,
            configured_charge_w=self.s.max_charge_w,
            configured_discharge_w=self.s.max_discharge_w,
            operator_charge_w=self.operator_limit[0],
            operator_discharge_w=self.operator_limit[1],
        )

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
        if self.state in ACTIVE and self.limits.clamp(self.applied_w) != self.applied_w:
            self._spawn_setpoint()  # a lowered limit applies now, not at the next ramp step

    def _next_step(self) -> float:
        """The value to write now: the request through the pipeline (SoC bounds and backup
        reserve, limits, ramp from the current value), whichever mode or command asked."""
        return self._through_pipeline(self.requested_w).power_w

    def _through_pipeline(self, want_w: float, ramp: bool = True) -> Applied:
        ps = PipelineSettings.of(self.s)
        if not ramp:
            ps = replace(ps, ramp_w_per_s=0.0)
        return apply(want_w, self.site_view(), ps, self.applied_w, self.s.ramp_interval_s)

    def _spawn_setpoint(
        self, pf: float | None = None, immediate_zero: bool = False
    ) -> asyncio.Task[None]:
        if self._running(self._sp_task):
            assert self._sp_task is not None
            self._sp_task.cancel()  # superseded
        self._sp_task = self.jobs.spawn(self._write_setpoint(pf, immediate_zero), "write_setpoint")
        return self._sp_task

    async def _write_setpoint(self, pf: float | None, immediate_zero: bool) -> None:
        try:
            if pf is not None:
                await self.p.write_pf(pf)
            # Computed at write time, so the limits in force at that moment apply.
            target = 0.0 if immediate_zero else self._next_step()
            await self.p.write_power(target)
            await self._write_grid_var()
        except WriteFailed as exc:
            self._trip([exc.fault()], "setpoint write failed")
            return
        except Unsupported as exc:  # validated before; a subclass may still refuse
            log.warning("%s", exc)
            return
        self.applied_w = target
        self._last_write = self.clock()
        self._changed()

    async def _command_setpoint(self, pf: float | None = None) -> dict[str, Any]:
        task = self._spawn_setpoint(pf)
        await asyncio.wait([task], timeout=REPLY_WAIT_S)
        if self.state == St.FAULT:
            raise Refused("fault_active", f"setpoint not applied: {self.reason}")
        return self._reply()

    def _maintain_setpoint(self) -> None:
        """Ramp steps and the lease refresh (rewrite before the device's revert timer)."""
        if (
            self.state not in ACTIVE
            or self._running(self._sp_task)
            or self._running(self._seq_task)
        ):
            return
        since = self.clock() - self._last_write
        ramp_due = self._next_step() != self.applied_w and (
            self.s.ramp_w_per_s <= 0 or since >= self.s.ramp_interval_s
        )
        if ramp_due or since >= self.s.refresh_s or self.grid_var_due():
            self._spawn_setpoint()

    async def _protect_hold(self, reason: str, event: str) -> dict[str, Any]:
        self.requested_w = 0.0
        self._select_manual(0.0)
        self._goto(event, reason)
        task = self._spawn_setpoint(immediate_zero=True)
        await asyncio.wait([task], timeout=REPLY_WAIT_S)
        return self._reply()


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
