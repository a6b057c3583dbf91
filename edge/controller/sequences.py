"""Start and stop sequences, trips, and the cancellation of work in progress.

Start: reset alarms, unlock, close the contactors, wait (bounded) for CONNECTED, power mode,
power 0, hold. Stop: power 0, inverter off, open the contactors, every step tried even if one
fails. A trip latches `fault` at once and runs the stop sequence.
"""

from __future__ import annotations

import asyncio
import logging

from edge.controller.context import ControllerContext
from edge.controller.faults import Fault
from edge.controller.machine import St
from edge.controller.profiles import WriteFailed

log = logging.getLogger(__name__)


class Sequences(ControllerContext):
    def _start(self, reason: str) -> None:
        self.requested_w = 0.0
        self._goto("start", reason)
        self._energised_since = self.clock()
        self._seq_task = self.jobs.spawn(self._start_sequence(), "start_sequence")

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
        if self.state != St.CONNECTING or self._enabling:
            return
        if self.p.is_connected():
            self._enabling = True
            self._seq_task = self.jobs.spawn(self._enable_sequence(), "enable_sequence")
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
            await self._write_native_grid()
            await self.p.write_power(0.0)
            self.applied_w = 0.0
            self._last_write = self.clock()
        except WriteFailed as exc:
            self._trip([exc.fault()], "enable sequence failed")
            return
        finally:
            self._enabling = False
        if self.state != St.CONNECTING:
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
        elif self.state == St.STOPPING:
            self._goto("stop_done", "stop sequence complete")
        else:
            self._changed()

    def _retry_failed_stop(self, now: bool = False) -> None:
        """A stop that failed (a device was unreachable) is run again until it completes:
        every refresh_s, and at once when a device comes back online."""
        if (
            self.state == St.FAULT
            and self._stop_failed
            and not self._running(self._stop_task)
            and (now or self._every("stop_retry", self.s.refresh_s))
        ):
            self._stop_task = self.jobs.spawn(self._stop_sequence(), "stop_sequence")

    def _trip(self, faults: list[Fault], reason: str) -> None:
        """Latch faults, go to `fault` at once, and run the stop sequence (unless running)."""
        new = [f for f in faults if f not in self.faults]
        if not new and self.state == St.FAULT:
            return
        self.faults.extend(new)
        for f in new:
            self._emit({"kind": "fault", "code": f.code, "detail": f.detail})
        if self.state != St.FAULT:
            self.pending_recovery_w = None
            self.requested_w = 0.0
            self._cancel_work(keep_stop=True)
            detail = "; ".join(f"{f.code}: {f.detail}" for f in new)
            self._goto("trip", f"{reason}: {detail}" if detail else reason)
        else:
            self._changed()
        if not self._running(self._stop_task):
            self._stop_task = self.jobs.spawn(self._stop_sequence(), "stop_sequence")

    def _cancel_work(self, keep_stop: bool = False) -> None:
        current = asyncio.current_task()
        for task in (self._sp_task, self._seq_task) + (() if keep_stop else (self._stop_task,)):
            if task is not None and not task.done() and task is not current:
                task.cancel()
        self._enabling = False
