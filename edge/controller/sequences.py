"""Start and stop sequences, trips, and the cancellation of work in progress.

Start: reset alarms, unlock, close the contactors, wait (bounded) for CONNECTED, power mode,
power 0, hold. Stop: power 0, inverter off, open the contactors, every step tried even if one
fails. A trip latches `fault` at once and runs the stop sequence. Each sequence is a `Program`
of the profile's plans; what happens when it ends is decided here, synchronously.
"""

from __future__ import annotations

import logging

from edge.controller.context import ControllerContext
from edge.controller.faults import Fault
from edge.controller.machine import St
from edge.controller.plan import WriteFailed
from edge.controller.runner import Program, Stage

log = logging.getLogger(__name__)

# The runner's lanes: at most one program in each.
SEQUENCE, SETPOINT, STOP, HEARTBEAT, GRID = "sequence", "setpoint", "stop", "heartbeat", "grid"


def faults_of(errors: list[Exception]) -> list[Fault]:
    """The faults of a program's errors (a failed write, or a profile that could not plan)."""
    return [
        e.fault() if isinstance(e, WriteFailed) else Fault("write_failed", str(e)) for e in errors
    ]


class Sequences(ControllerContext):
    def _start(self, reason: str) -> None:
        self.requested_w = 0.0
        self._goto("start", reason)
        self._energised_since = self.clock()
        p = self.p
        self._sequence_work = self.runner.run(
            SEQUENCE,
            Program(
                "start sequence",
                [Stage(name, plan) for name, plan in p.start_steps()],
                on_done=self._started,
            ),
        )

    def _started(self, errors: list[Exception]) -> None:
        """Alarms reset, unlocked, contactors closed: wait (bounded) for CONNECTED."""
        if errors:
            self._trip(faults_of(errors), "start sequence failed")
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
            self._sequence_work = self.runner.run(SEQUENCE, self._enable_program())
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

    def _enable_program(self) -> Program:
        """Constant-power mode, the native grid functions, power 0."""

        def zeroed() -> None:
            self.applied_w = 0.0
            self._last_write = self.clock()

        return Program(
            "enable sequence",
            [
                Stage("power mode", self.p.enable_power_mode),
                *self._native_grid_stages(),
                Stage("power 0", lambda: self.p.write_power(0.0), after=zeroed),
            ],
            on_done=self._enabled,
        )

    def _enabled(self, errors: list[Exception]) -> None:
        """Then hold (or recover, if asked during start)."""
        self._enabling = False
        if errors:
            self._trip(faults_of(errors), "enable sequence failed")
            return
        if self.state != St.CONNECTING:
            return
        if self.pending_recovery_w is not None:
            self.requested_w = -self.pending_recovery_w
            self.pending_recovery_w = None
            self._goto("connected_recover", "battery connected; SoC recovery requested")
            if self._recovery_done():
                self._end_recovery()
            else:
                self._spawn_setpoint()
        else:
            self.requested_w = 0.0
            self._goto("connected", "battery connected; inverter in constant-power mode")
            self._check_soc()  # already at the low limit: recovery at once

    def _run_stop(self) -> Program:
        """Power 0, inverter off, open the contactors; every step is tried even if one fails."""

        def zeroed() -> None:
            self.applied_w = 0.0

        stages = [
            Stage(name, plan, after=zeroed if name == "power 0" else None)
            for name, plan in self.p.stop_steps()
        ]
        self._stop_work = self.runner.run(
            STOP, Program("stop sequence", stages, on_done=self._stopped, keeps_going=True)
        )
        return self._stop_work

    def _stopped(self, errors: list[Exception]) -> None:
        self._stop_failed = bool(errors)
        if errors:
            # Retried every refresh_s and when a device is back, not at once (_retry_failed_stop).
            self._trip(faults_of(errors), "stop sequence failed", run_stop=False)
            return
        self._energised_since = None
        if self.state == St.STOPPING:
            self._goto("stop_done", "stop sequence complete")
        else:
            self._changed()

    def _retry_failed_stop(self, now: bool = False) -> None:
        """A stop that failed (a device was unreachable) is run again until it completes:
        every refresh_s, and at once when a device comes back online."""
        if (
            self.state == St.FAULT
            and self._stop_failed
            and not self._running(self._stop_work)
            and (now or self._every("stop_retry", self.s.refresh_s))
        ):
            self._run_stop()

    def _trip(self, faults: list[Fault], reason: str, run_stop: bool = True) -> None:
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
        if run_stop and not self._running(self._stop_work):
            self._run_stop()

    def _cancel_work(self, keep_stop: bool = False) -> None:
        for lane in (SETPOINT, SEQUENCE) + (() if keep_stop else (STOP,)):
            self.runner.cancel(lane)
        self._enabling = False
