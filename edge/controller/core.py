"""The controller: one object assembled from one part per job, free of MQTT and real time.

It reads a `Telemetry` store, writes through a `Profile` (whose `DeviceWriter` port the shell
binds to set topics), takes `clock` (monotonic s) and `wall` (Unix s) functions, and reports
through `on_event`/`on_change` callbacks. Events come in as method calls: a point (`on_point`),
a status (`on_status`), a command (`command`), a tick (`tick`, every `tick_s`; every timer is
polled from there against the injected clock). Transitional work (sequences, setpoint writes)
runs in tasks the shell's `Jobs` runner makes, so that commands keep being accepted while it is
in progress: a new setpoint supersedes the one being written, `stop` and faults cancel
everything and run the stop sequence.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from edge.controller.commands import Commands
from edge.controller.config import ControllerSettings
from edge.controller.context import Task
from edge.controller.errors import Refused, short
from edge.controller.faults import Fault
from edge.controller.grid_control import GridControl
from edge.controller.jobs import Jobs
from edge.controller.limits import Limits
from edge.controller.machine import BessMachine
from edge.controller.monitors import Monitors
from edge.controller.operating import Operating
from edge.controller.profiles import Profile
from edge.controller.sequences import Sequences
from edge.controller.setpoint import Setpoint
from edge.controller.telemetry import Telemetry
from edge.mqtt.topics import CONTROLLER_COMMANDS

__all__ = ["COMMANDS", "Controller", "Refused", "short"]

COMMANDS = CONTROLLER_COMMANDS  # topics.md, "Controller"


class Controller(Commands, Sequences, Setpoint, Monitors, Operating, GridControl):
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
        jobs: Jobs | None = None,
    ) -> None:
        self.s = settings
        self.p = profile
        self.t = telemetry
        self.clock = clock
        self.wall = wall
        self._on_event = on_event
        self._on_change = on_change
        self.jobs = jobs or Jobs()  # the shell passes its own; tests get one each
        self.sm = BessMachine()
        self.reason = "controller started"
        self.faults: list[Fault] = []
        self.requested_w = 0.0  # signed: + discharge, - charge
        self.applied_w = 0.0
        self.pending_recovery_w: float | None = None
        # The operator run-time limits (cmd/limit), W; None: none that way.
        self.operator_limit: tuple[float | None, float | None] = (None, None)
        self.limits: Limits = self._compute_limits()
        self._limit_points = profile.limit_points()
        self._sp_task: Task | None = None
        self._seq_task: Task | None = None
        self._stop_task: Task | None = None
        self._hb_task: Task | None = None
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
        self._init_modes()
        self._init_grid()

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
            "mode": self.mode_state(),
            "why": self.why,
            "grid": self.grid_report(),
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
            "mode": self._cmd_mode,
            "schedule": self._cmd_schedule,
            "grid": self._cmd_grid,
            "limit": self._cmd_limit,
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
        self._control()
        self._maintain_setpoint()

    async def close(self) -> None:
        """Cancel every task (used when the service stops)."""
        await self.jobs.close()

    async def idle(self, timeout: float = 5.0) -> None:
        """Wait until no transitional work is in progress (tests, shutdown). Bounded."""
        await self.jobs.idle(timeout)
