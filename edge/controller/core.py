"""The controller core: synchronous, free of I/O, MQTT and real time (the h11 shape).

Events come in as method calls: a point (`on_point`), a status (`on_status`), a command
(`command`), a tick (`tick`, every `tick_s`), a write's result (`write_done`), a timer
(`timer`). Each may queue actions (edge.controller.actions) that the shell takes with `take()`
and performs: write a point, cancel a write, reply to a command, publish an event or the state,
start a timer. The core makes no task and starts no timer of its own: its periodic checks are
polled from `tick` against the injected `clock` (monotonic s) and `wall` (Unix s).

What may happen in which state is the transition table (machine.py); the work a transition
starts (a sequence, a setpoint) is a `Program` of device writes (runner.py), each write sent
only after the previous one was confirmed, so commands keep being accepted while it is in
progress: a new setpoint supersedes the one being written, `stop` and faults cancel everything
and run the stop sequence. A command whose reply must carry the outcome answers when that work
ends, or after REPLY_WAIT_S with the state as it is then: exactly one reply per command.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from edge.controller.actions import Action, Reply, StartTimer
from edge.controller.commands import Commands
from edge.controller.config import ControllerSettings
from edge.controller.context import REPLY_WAIT_S, Answer, Later
from edge.controller.errors import Refused, short
from edge.controller.faults import Fault
from edge.controller.grid_control import GridControl
from edge.controller.limits import Limits
from edge.controller.machine import Lifecycle
from edge.controller.monitors import Monitors
from edge.controller.operating import Operating
from edge.controller.profiles import Profile
from edge.controller.runner import Program, Runner
from edge.controller.sequences import Sequences
from edge.controller.setpoint import Setpoint
from edge.controller.telemetry import Telemetry
from edge.mqtt.topics import CONTROLLER_COMMANDS

__all__ = ["COMMANDS", "ControllerCore", "Refused", "short"]

log = logging.getLogger(__name__)

COMMANDS = CONTROLLER_COMMANDS  # topics.md, "Controller"
REPLY_TIMER = "reply:"


class ControllerCore(Commands, Sequences, Setpoint, Monitors, Operating, GridControl):
    def __init__(
        self,
        settings: ControllerSettings,
        profile: Profile,
        telemetry: Telemetry,
        *,
        clock: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self.s = settings
        self.p = profile
        self.t = telemetry
        self.clock = clock
        self.wall = wall
        self._out: list[Action] = []
        self.runner = Runner(self._out.append, self._program_ended)
        # Commands whose reply waits for work to end: request -> (command, what follows).
        self._waiting: dict[int, tuple[str, Later]] = {}
        self._timed: set[int] = set()  # requests whose reply deadline timer was started
        self.sm = Lifecycle()
        self.reason = "controller started"
        self.faults: list[Fault] = []
        self.requested_w = 0.0  # signed: + discharge, - charge
        self.applied_w = 0.0
        self.pending_recovery_w: float | None = None
        # The operator run-time limits (cmd/limit), W; None: none that way.
        self.operator_limit: tuple[float | None, float | None] = (None, None)
        self.limits: Limits = self._compute_limits()
        self._limit_points = profile.limit_points()
        self._setpoint_work: Program | None = None
        self._sequence_work: Program | None = None
        self._stop_work: Program | None = None
        self._heartbeat_work: Program | None = None
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

    # -- events in ------------------------------------------------------------------------
    def command(self, request: int, name: str, body: dict[str, Any]) -> None:
        """Command `request` arrived; its one Reply action follows now or when its work ends."""
        handler: Callable[[dict[str, Any]], Answer] | None = {
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
        if handler is None:
            expect = ", ".join(COMMANDS)
            self._refuse(
                request,
                name,
                Refused("unknown_command", f"command {name!r}: expected one of {expect}"),
            )
            return
        self._answer(request, name, lambda: handler(body))

    def write_done(self, ticket: int, reply: Any) -> None:
        """The device's reply to write `ticket` (None: no reply within the write timeout)."""
        self.runner.write_done(ticket, reply)

    def timer(self, name: str) -> None:
        """A timer the core asked for (StartTimer) has expired."""
        if name.startswith(REPLY_TIMER):
            request = int(name[len(REPLY_TIMER) :])
            waiting = self._waiting.pop(request, None)
            self._timed.discard(request)
            if waiting is not None:  # the work is still in progress: answer with the state now
                command, later = waiting
                self._answer(request, command, later.then, deadline_passed=True)

    def take(self) -> list[Action]:
        """The actions queued since the last call, in order (the shell performs them)."""
        out = self._out[:]
        self._out.clear()
        return out

    def busy(self) -> bool:
        """Work (a sequence, a setpoint) in progress, or a reply still waiting for it."""
        return self.runner.busy() or bool(self._waiting)

    # -- replies ---------------------------------------------------------------------------
    def _answer(
        self,
        request: int,
        command: str,
        step: Callable[[], Answer],
        deadline_passed: bool = False,
    ) -> None:
        while True:
            try:
                answer = step()
            except Refused as r:
                self._refuse(request, command, r)
                return
            except Exception as exc:  # a bug must not leave a requester without its reply
                log.exception("command %s failed", command)
                self._refuse(
                    request,
                    command,
                    Refused("fault_active", f"{command}: internal error {type(exc).__name__}"),
                )
                return
            if not isinstance(answer, Later):
                self._timed.discard(request)
                self._out.append(Reply(request, body=answer))
                return
            if deadline_passed or answer.program is None or answer.program.done:
                step = answer.then
                continue
            self._waiting[request] = (command, answer)
            if request not in self._timed:
                self._timed.add(request)
                self._out.append(StartTimer(f"{REPLY_TIMER}{request}", REPLY_WAIT_S))
            return

    def _refuse(self, request: int, command: str, r: Refused) -> None:
        self._timed.discard(request)
        self._emit(
            {"kind": "refused", "command": command, "error": {"code": r.code, "message": r.message}}
        )
        self._out.append(Reply(request, refused=r))

    def _program_ended(self, program: Program) -> None:
        """Answer the commands waiting for `program`."""
        for request, (command, later) in list(self._waiting.items()):
            if later.program is program and request in self._waiting:
                del self._waiting[request]
                self._answer(request, command, later.then)

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


def __getattr__(name: str) -> Any:
    """`Controller`, the asyncio shell around the core, lives in driver.py."""
    if name == "Controller":
        from edge.controller.driver import Controller

        return Controller
    raise AttributeError(name)
