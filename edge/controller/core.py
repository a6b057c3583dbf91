"""The controller's decision logic: commands, SoC protection, limits, faults, sequences.

Free of MQTT and of real time: it reads a `Telemetry` store, writes through a `Profile` (whose
`DeviceWriter` port the shell binds to set topics), takes `clock` (monotonic s) and `wall`
(Unix s) functions, and reports through `on_event`/`on_change` callbacks. The shell calls
`tick()` every `tick_s`; everything periodic is scheduled from there against the injected clock.

Transitional work (start/enable/stop sequences, setpoint writes) runs in asyncio tasks so that
commands keep being accepted while it is in progress: a new setpoint supersedes the one being
written, `stop` and faults cancel everything and run the stop sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from edge.controller.config import ControllerSettings
from edge.controller.errors import Refused, short
from edge.controller.faults import Fault
from edge.controller.limits import Limits, compute_limits, ramp_toward
from edge.controller.machine import ACTIVE, ENERGISED, BessMachine
from edge.controller.profiles import Profile, Unsupported, WriteFailed
from edge.controller.telemetry import Telemetry

log = logging.getLogger(__name__)

REPLY_WAIT_S = 4.0  # a reply always leaves before the requester's 5 s timeout (topics.md)
COMMANDS = ("start", "stop", "hold", "reset", "get_state", "charge", "discharge", "recover_soc")


class Controller:
    def __init__(
        self,
        settings: ControllerSettings,
        profile: Profile,
        telemetry: Telemetry,
        *,
        clock: Callable[[], float],
        wall: Callable[[], float],
        on_event: Callable[[dict[str, Any]], None] = lambda _e: None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.s = settings
        self.p = profile
        self.t = telemetry
        self.clock = clock
        self.wall = wall
        self._on_event = on_event
        self._on_change = on_change
        self.sm = BessMachine()
        self.reason = "controller started"
        self.faults: list[Fault] = []
        self.requested_w = 0.0  # signed: + discharge, - charge
        self.applied_w = 0.0
        self.pending_recovery_w: float | None = None
        self.limits: Limits = self._compute_limits()
        self._limit_points = profile.limit_points()
        self._sp_task: asyncio.Task[None] | None = None
        self._seq_task: asyncio.Task[None] | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._hb_task: asyncio.Task[None] | None = None
        self._enabling = False
        self._energised_since: float | None = None
        # The last stop sequence had a step fail: the site may still be energised. It is
        # retried every refresh_s while in fault, and `reset` waits for it to complete.
        self._stop_failed = False
        self._connect_deadline: float | None = None
        self._last_write = -math.inf
        self._due: dict[str, float] = {}
        self._boot_at = clock()
        self._booted = False

    # ====================================================================================
    # public API
    # ====================================================================================
    @property
    def state(self) -> str:
        return self.sm.state_id

    def snapshot(self) -> dict[str, Any]:
        """The state topic's JSON (topics.md, "Controller state")."""
        soc = self.p.soc()
        return {
            "state": self.state,
            "setpoint": self._setpoint(),
            "limits": self.limits.as_dict(),
            "soc": None if soc is None else round(soc, 3),
            "faults": [f.as_dict() for f in self.faults],
            "reason": self.reason,
            "ts": round(self.wall(), 3),
        }

    async def command(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Run one command; returns the accepted reply's fields or raises Refused."""
        handler: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = {
            "start": self._cmd_start,
            "stop": self._cmd_stop,
            "hold": self._cmd_hold,
            "reset": self._cmd_reset,
            "get_state": self._cmd_get_state,
            "charge": self._cmd_charge,
            "discharge": self._cmd_discharge,
            "recover_soc": self._cmd_recover,
        }.get(name)
        try:
            if handler is None:
                raise Refused(
                    "unknown_command", f"command {name!r}: expected one of {', '.join(COMMANDS)}"
                )
            return await handler(body)
        except Refused as r:
            self._emit(
                {
                    "kind": "refused",
                    "command": name,
                    "error": {"code": r.code, "message": r.message},
                }
            )
            raise

    def on_point(self, device: str, model: str, point: str, value: Any) -> None:
        """A point topic's value arrived (retained or live)."""
        self.t.update(device, model, point, value)
        if (device, model, point) in self._limit_points:
            self._update_limits()
        if device == self.s.battery:
            if point == "SoC":
                self._check_soc()
                self._check_recovery()
            elif point == "State":
                self._check_connecting()
        self._check_faults()
        if device == self.s.inverter and point == "Heartbeat":
            self._maybe_reset_heartbeat()

    def on_status(self, device: str, status: str) -> None:
        self.t.set_status(device, status)
        self._check_faults()
        if status == "online":
            self._retry_failed_stop(now=True)

    def tick(self) -> None:
        """Periodic work, driven by the shell every tick_s; schedules use the injected clock."""
        s = self.s
        if not self._booted and self.clock() - self._boot_at >= s.restart_settle_s:
            self._boot_report()
        if self._every("soc", s.soc_monitor_interval):
            self._check_soc()
        if self._every("recovery", s.soc_recovery_check_interval):
            self._check_recovery()
        if self._every("fault", s.system_fault_check_interval):
            self._check_faults()
            self._check_heartbeat_lost()
        if self._every("connecting", s.wait_connecting_interval):
            self._check_connecting()
        if self._every("heartbeat", s.inverter_heartbeat_check_interval):
            self._maybe_reset_heartbeat()
        self._retry_failed_stop()
        self._maintain_setpoint()

    async def close(self) -> None:
        """Cancel every task (used when the service stops)."""
        for task in (self._sp_task, self._seq_task, self._stop_task, self._hb_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def idle(self, timeout: float = 5.0) -> None:
        """Wait until no transitional work is in progress (tests, shutdown). Bounded."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            tasks = [
                t
                for t in (self._sp_task, self._seq_task, self._stop_task, self._hb_task)
                if t is not None and not t.done()
            ]
            if not tasks:
                return
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError("controller still busy")
            await asyncio.wait(tasks, timeout=left)

    # ====================================================================================
    # commands
    # ====================================================================================
    async def _cmd_get_state(self, body: dict[str, Any]) -> dict[str, Any]:
        self._fields("get_state", body, set())
        return {**self._reply(), **{k: v for k, v in self.snapshot().items() if k != "state"}}

    async def _cmd_start(self, body: dict[str, Any]) -> dict[str, Any]:
        self._fields("start", body, set())
        self._refuse_in_fault("start")
        if not self.sm.can("start"):
            raise self._not_allowed("start", "stopped")
        causes = self._fault_causes()
        if causes:
            raise Refused("fault_active", "start: " + "; ".join(f.detail for f in causes))
        self._start("command start")
        await self._await(self._seq_task)
        return self._reply()

    async def _cmd_stop(self, body: dict[str, Any]) -> dict[str, Any]:
        self._fields("stop", body, set())
        if self.state == "stopping" or (self.state == "fault" and self._running(self._stop_task)):
            await self._await(self._stop_task)
            return self._reply()
        self._cancel_work()
        self.pending_recovery_w = None
        self.requested_w = 0.0
        self._goto("stop", "command stop")
        self._stop_task = asyncio.create_task(self._stop_sequence())
        await self._await(self._stop_task)
        return self._reply()

    async def _cmd_hold(self, body: dict[str, Any]) -> dict[str, Any]:
        self._fields("hold", body, set())
        self._refuse_in_fault("hold")
        if not self.sm.can("hold"):
            extra = (
                "; recovery ends by itself at soc_recovered_level, or use stop"
                if self.state == "soc_recovery"
                else ""
            )
            raise self._not_allowed("hold", "holding, charging, discharging", extra)
        self.requested_w = 0.0
        self._goto("hold", "command hold")
        return await self._command_setpoint()

    async def _cmd_charge(self, body: dict[str, Any]) -> dict[str, Any]:
        w, pf = self._power_body("charge", body)
        self._refuse_in_fault("charge")
        if not self.sm.can("charge"):
            raise self._not_allowed("charge", "holding, charging, discharging, soc_recovery")
        soc = self.p.soc()
        if soc is not None and soc >= self.s.soc_high_limit:
            # The original's rule: a charge above the high limit becomes hold.
            return await self._protect_hold(
                f"charge {w:g} W not applied: soc {soc:g} >= soc_high_limit "
                f"{self.s.soc_high_limit:g}",
                event="hold" if self.sm.can("hold") else "recovered",
            )
        self.requested_w = -w
        self._goto("charge", "command charge")
        return await self._command_setpoint(pf)

    async def _cmd_discharge(self, body: dict[str, Any]) -> dict[str, Any]:
        w, pf = self._power_body("discharge", body)
        self._refuse_in_fault("discharge")
        if self.state == "soc_recovery":
            raise Refused(
                "not_allowed_in_state",
                "discharge: refused during soc_recovery (SoC below soc_recovered_level "
                f"{self.s.soc_recovered_level:g})",
            )
        if not self.sm.can("discharge"):
            raise self._not_allowed("discharge", "holding, charging, discharging")
        soc = self.p.soc()
        if soc is not None and soc <= self.s.soc_low_limit:
            return await self._protect_hold(
                f"discharge {w:g} W not applied: soc {soc:g} <= soc_low_limit "
                f"{self.s.soc_low_limit:g}",
                event="hold",
            )
        self.requested_w = w
        self._goto("discharge", "command discharge")
        return await self._command_setpoint(pf)

    async def _cmd_recover(self, body: dict[str, Any]) -> dict[str, Any]:
        self._fields("recover_soc", body, {self._power_key()})
        self._refuse_in_fault("recover_soc")
        if self._power_key() in body:
            w = self._power_value("recover_soc", body)
        else:
            w = self._to_w("recover_soc", self.s.soc_low_recovery_charge_command)
        st = self.state
        if st == "stopped":
            self.pending_recovery_w = w
            self._start("command recover_soc (start, then recover)")
            await self._await(self._seq_task)
            return self._reply()
        if st in ("starting", "connecting"):
            self.pending_recovery_w = w
            self.reason = "command recover_soc: recovery follows the start sequence"
            self._changed()
            return self._reply()
        if not self.sm.can("recover"):
            raise self._not_allowed(
                "recover_soc", "stopped, starting, connecting, holding, charging, discharging"
            )
        self.requested_w = -w
        self._goto("recover", "command recover_soc")
        if self._recovery_done():
            return await self._end_recovery()
        return await self._command_setpoint()

    async def _cmd_reset(self, body: dict[str, Any]) -> dict[str, Any]:
        self._fields("reset", body, set())
        if self.state != "fault":
            raise Refused("not_allowed_in_state", f"reset: nothing latched; state is {self.state}")
        if self._stop_failed and not self._running(self._stop_task):
            # The last stop had a step fail: run it again now; reset only once it completes.
            self._stop_task = asyncio.create_task(self._stop_sequence())
        if self._running(self._stop_task):
            await self._await(self._stop_task)  # bounded: every step has write_timeout_s
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

    @staticmethod
    def _fields(command: str, body: dict[str, Any], allowed: set[str]) -> None:
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
        return self._to_w(command, float(v))

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
        if self.state == "fault":
            names = ", ".join(f.code for f in self.faults) or "fault"
            raise Refused(
                "fault_active", f"{command}: fault latched ({names}); clear it with reset"
            )

    def _not_allowed(self, command: str, allowed: str, extra: str = "") -> Refused:
        return Refused(
            "not_allowed_in_state",
            f"{command}: not allowed in state {self.state} (allowed in {allowed}){extra}",
        )

    # -- replies ---------------------------------------------------------------------------
    def _setpoint(self) -> dict[str, float]:
        return {
            "requested_w": round(abs(self.requested_w), 3),
            "applied_w": round(abs(self.applied_w), 3),
        }

    def _reply(self) -> dict[str, Any]:
        return {"state": self.state, "setpoint": self._setpoint()}

    async def _await(self, task: asyncio.Task[None] | None) -> None:
        """Wait (bounded) for transitional work so the reply carries its outcome."""
        if task is not None and not task.done():
            await asyncio.wait([task], timeout=REPLY_WAIT_S)

    # ====================================================================================
    # transitions and sequences
    # ====================================================================================
    def _goto(self, event: str, reason: str) -> None:
        before = self.state
        self.sm.send(event)
        self.reason = reason
        after = self.state
        if after in ENERGISED and self._energised_since is None:
            self._energised_since = self.clock()
        self._emit({"kind": "transition", "from": before, "to": after, "reason": reason})
        self._changed()

    def _start(self, reason: str) -> None:
        self.requested_w = 0.0
        self._goto("start", reason)
        self._energised_since = self.clock()
        self._seq_task = asyncio.create_task(self._start_sequence())

    async def _start_sequence(self) -> None:
        """Reset alarms, unlock, close the contactors; then wait (bounded) for CONNECTED."""
        try:
            await self.p.reset_alarms()
            await self.p.unlock()
            await self.p.close_contactors()
        except WriteFailed as exc:
            self._trip([exc.fault()], "start sequence failed")
            return
        self._connect_deadline = self.clock() + self.s.connect_timeout_s
        self._goto(
            "contactors_closed", "contactors closed; waiting for battery State CONNECTED (3)"
        )
        self._check_connecting()

    def _check_connecting(self) -> None:
        if self.state != "connecting" or self._enabling:
            return
        if self.p.is_connected():
            self._enabling = True
            self._seq_task = asyncio.create_task(self._enable_sequence())
        elif self._connect_deadline is not None and self.clock() > self._connect_deadline:
            last = self.t.get(self.s.battery, self.p.battery_model, "State")
            self._trip(
                [
                    Fault(
                        "connect_timeout",
                        f"battery State did not reach CONNECTED (3) within "
                        f"{self.s.connect_timeout_s:g} s (last State {last})",
                    )
                ],
                "connect timeout",
            )

    async def _enable_sequence(self) -> None:
        """Constant-power mode, power 0, then hold (or recover, if asked during start)."""
        try:
            await self.p.enable_power_mode()
            await self.p.write_power(0.0)
            self.applied_w = 0.0
            self._last_write = self.clock()
        except WriteFailed as exc:
            self._trip([exc.fault()], "enable sequence failed")
            return
        finally:
            self._enabling = False
        if self.state != "connecting":
            return
        if self.pending_recovery_w is not None:
            self.requested_w = -self.pending_recovery_w
            self.pending_recovery_w = None
            self._goto("connected_recover", "battery connected; SoC recovery requested")
            if self._recovery_done():
                await self._end_recovery()
            else:
                self._spawn_setpoint()
        else:
            self.requested_w = 0.0
            self._goto("connected", "battery connected; inverter in constant-power mode")
            self._check_soc()  # already at the low limit: recovery at once

    async def _stop_sequence(self) -> None:
        """Power 0, inverter off, open the contactors; every step is tried even if one fails."""
        failures: list[Fault] = []
        for name, step in self.p.stop_steps():
            try:
                await step()
                if name == "power 0":
                    self.applied_w = 0.0
            except WriteFailed as exc:
                failures.append(exc.fault())
            except Exception as exc:  # a profile bug must not leave the stop half-done
                log.exception("stop step %s failed", name)
                failures.append(Fault("write_failed", f"{name}: {type(exc).__name__}: {exc}"))
        self._stop_failed = bool(failures)
        if not failures:
            self._energised_since = None
        if failures:
            self._trip(failures, "stop sequence failed")
        elif self.state == "stopping":
            self._goto("stop_done", "stop sequence complete")
        else:
            self._changed()

    def _retry_failed_stop(self, now: bool = False) -> None:
        """A stop that failed (a device was unreachable) is run again until it completes:
        every refresh_s, and at once when a device comes back online."""
        if (
            self.state == "fault"
            and self._stop_failed
            and not self._running(self._stop_task)
            and (now or self._every("stop_retry", self.s.refresh_s))
        ):
            self._stop_task = asyncio.create_task(self._stop_sequence())

    def _trip(self, faults: list[Fault], reason: str) -> None:
        """Latch faults, go to `fault` at once, and run the stop sequence (unless running)."""
        new = [f for f in faults if f not in self.faults]
        if not new and self.state == "fault":
            return
        self.faults.extend(new)
        for f in new:
            self._emit({"kind": "fault", "code": f.code, "detail": f.detail})
        if self.state != "fault":
            self.pending_recovery_w = None
            self.requested_w = 0.0
            self._cancel_work(keep_stop=True)
            detail = "; ".join(f"{f.code}: {f.detail}" for f in new)
            self._goto("trip", f"{reason}: {detail}" if detail else reason)
        else:
            self._changed()
        if not self._running(self._stop_task):
            self._stop_task = asyncio.create_task(self._stop_sequence())

    def _cancel_work(self, keep_stop: bool = False) -> None:
        current = asyncio.current_task()
        for task in (self._sp_task, self._seq_task) + (() if keep_stop else (self._stop_task,)):
            if task is not None and not task.done() and task is not current:
                task.cancel()
        self._enabling = False

    @staticmethod
    def _running(task: asyncio.Task[None] | None) -> bool:
        return task is not None and not task.done()

    # ====================================================================================
    # setpoint: clamp, ramp, write, lease
    # ====================================================================================
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
        )

    def _update_limits(self) -> None:
        new = self._compute_limits()
        if new == self.limits:
            return
        self.limits = new
        self._changed()
        if self.state in ACTIVE and self.limits.clamp(self.applied_w) != self.applied_w:
            self._spawn_setpoint()  # a lowered limit applies now, not at the next ramp step

    def _next_step(self) -> float:
        """The value to write now: the clamped request, ramped from the (clamped) current value."""
        goal = self.limits.clamp(self.requested_w)
        base = self.limits.clamp(self.applied_w)
        if self.s.ramp_w_per_s > 0:
            return ramp_toward(base, goal, self.s.ramp_w_per_s * self.s.ramp_interval_s)
        return goal

    def _spawn_setpoint(
        self, pf: float | None = None, immediate_zero: bool = False
    ) -> asyncio.Task[None]:
        if self._running(self._sp_task):
            assert self._sp_task is not None
            self._sp_task.cancel()  # superseded
        self._sp_task = asyncio.create_task(self._write_setpoint(pf, immediate_zero))
        return self._sp_task

    async def _write_setpoint(self, pf: float | None, immediate_zero: bool) -> None:
        try:
            if pf is not None:
                await self.p.write_pf(pf)
            # Computed at write time, so the limits in force at that moment apply.
            target = 0.0 if immediate_zero else self._next_step()
            await self.p.write_power(target)
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
        if self.state == "fault":
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
        if ramp_due or since >= self.s.refresh_s:
            self._spawn_setpoint()

    async def _protect_hold(self, reason: str, event: str) -> dict[str, Any]:
        self.requested_w = 0.0
        self._goto(event, reason)
        task = self._spawn_setpoint(immediate_zero=True)
        await asyncio.wait([task], timeout=REPLY_WAIT_S)
        return self._reply()

    # ====================================================================================
    # monitors
    # ====================================================================================
    def _check_soc(self) -> None:
        """B1: no fresh SoC (never received included) stops; high/low limits protect."""
        st = self.state
        if st not in ENERGISED or st == "stopping" or self._energised_since is None:
            return
        soc = self.p.soc()
        age = self.p.soc_age()
        max_t = self.s.soc_monitor_max_time
        if soc is None or age is None:
            if self.clock() - self._energised_since > max_t:
                self._trip(
                    [
                        Fault(
                            "soc_stale", f"no SoC received within soc_monitor_max_time {max_t:g} s"
                        )
                    ],
                    "SoC monitor",
                )
            return
        if age > max_t:
            self._trip(
                [
                    Fault(
                        "soc_stale", f"SoC is {age:.1f} s old (> soc_monitor_max_time {max_t:g} s)"
                    )
                ],
                "SoC monitor",
            )
            return
        if st == "charging" and soc >= self.s.soc_high_limit:
            self.requested_w = 0.0
            self._goto("soc_high", f"soc {soc:g} >= soc_high_limit {self.s.soc_high_limit:g}")
            self._spawn_setpoint(immediate_zero=True)
        elif st in ("holding", "discharging") and soc <= self.s.soc_low_limit:
            self.requested_w = -self._recovery_w()
            self._goto("soc_low", f"soc {soc:g} <= soc_low_limit {self.s.soc_low_limit:g}")
            self._spawn_setpoint()

    def _recovery_w(self) -> float:
        cmd = self.s.soc_low_recovery_charge_command
        if self.s.user_command_mode == "POWER":
            return cmd
        v = self.p.battery_v()
        return cmd * v if v else 0.0

    def _recovery_done(self) -> bool:
        soc = self.p.soc()
        return soc is not None and soc >= self.s.soc_recovered_level

    def _check_recovery(self) -> None:
        """B2: recovery always ends once SoC >= soc_recovered_level (entry included)."""
        if self.state == "soc_recovery" and self._recovery_done():
            self.requested_w = 0.0
            soc = self.p.soc()
            self._goto(
                "recovered", f"soc {soc:g} >= soc_recovered_level {self.s.soc_recovered_level:g}"
            )
            self._spawn_setpoint(immediate_zero=True)

    async def _end_recovery(self) -> dict[str, Any]:
        self._check_recovery()
        if self._sp_task is not None:
            await asyncio.wait([self._sp_task], timeout=REPLY_WAIT_S)
        return self._reply()

    def _fault_causes(self) -> list[Fault]:
        """Faults whose cause is present in telemetry now (they block start and reset)."""
        causes = self.p.battery_faults() + self.p.inverter_faults()
        for dev in (self.s.battery, self.s.inverter):
            if self.t.status(dev) == "offline":
                causes.append(Fault("device_offline", f"{dev} is offline"))
        return causes

    def _check_faults(self) -> None:
        """Trip on any cause while energised; in `fault`, name causes that appear later too."""
        if self.state not in ENERGISED and self.state != "fault":
            return
        causes = self._fault_causes()
        if self.state in ACTIVE:
            causes += self.p.inverter_faults_active()
        if causes:
            self._trip(causes, "fault detected")

    def _check_heartbeat_lost(self) -> None:
        if self._energised_since is None or self.state not in ENERGISED:
            return
        f = self.p.heartbeat_fault(self.clock() - self._energised_since)
        if f is not None:
            self._trip([f], "inverter heartbeat")

    def _maybe_reset_heartbeat(self) -> None:
        """B7: the heartbeat is kept alive whenever the inverter is energised."""
        if self._energised_since is None or self._running(self._hb_task):
            return
        if self.p.heartbeat_needs_reset():
            self._hb_task = asyncio.create_task(self._reset_heartbeat())

    async def _reset_heartbeat(self) -> None:
        try:
            await self.p.reset_heartbeat()
        except WriteFailed as exc:
            self._trip([exc.fault()], "heartbeat reset failed")

    def _boot_report(self) -> None:
        """Issue 4 item 9: on restart, report what was found; never resume blindly."""
        self._booted = True
        found = self.p.restart_report()
        self._emit({"kind": "restart", "found": found})
        summary = ", ".join(f"{k}={v}" for k, v in found.items())
        if self.state != "stopped":
            return
        if self.s.on_restart == "stop" and self.p.found_energised(found):
            self._goto(
                "stop", f"restart: found devices energised ({summary}); running the stop sequence"
            )
            self._stop_task = asyncio.create_task(self._stop_sequence())
        else:
            self.reason = f"restart: found {summary}"
            self._changed()

    # -- plumbing --------------------------------------------------------------------------
    def _every(self, name: str, interval: float) -> bool:
        now = self.clock()
        due = self._due.get(name)
        if due is None or now >= due:
            self._due[name] = now + interval
            return True
        return False

    def _emit(self, event: dict[str, Any]) -> None:
        event.setdefault("ts", round(self.wall(), 3))
        try:
            self._on_event(event)
        except Exception:
            log.exception("event callback failed")

    def _changed(self) -> None:
        try:
            self._on_change()
        except Exception:
            log.exception("change callback failed")
