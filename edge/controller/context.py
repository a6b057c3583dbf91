"""What the controller's parts share: its state, its ports, transitions and plumbing.

The Controller (core.py) is assembled from one part per job: commands.py (typed command
bodies and replies), sequences.py (start and stop), setpoint.py (pipeline, write, lease),
monitors.py (SoC, faults, heartbeat, restart) and operating.py (modes and the schedule).
Each part derives from `ControllerContext`, which holds the shared attributes and declares the
few methods one part calls in another.

No part awaits or makes a task. Work that writes devices is a `Program` run by the `Runner`
(runner.py); a command whose reply must carry the outcome of such work answers `Later`: the
reply is sent when the program ends, or after REPLY_WAIT_S with the state as it is then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

from edge.controller.actions import Action, Changed, Emit
from edge.controller.config import ControllerSettings
from edge.controller.errors import Refused
from edge.controller.faults import Fault
from edge.controller.limits import Limits
from edge.controller.machine import ENERGISED, Lifecycle, St
from edge.controller.modes.base import SiteView
from edge.controller.pipeline import Applied
from edge.controller.profiles import Profile
from edge.controller.runner import Program, Runner, Stage
from edge.controller.telemetry import Telemetry

log = logging.getLogger(__name__)

REPLY_WAIT_S = 4.0  # a reply always leaves before the requester's 5 s timeout (topics.md)


@dataclass
class Later:
    """A reply that follows `program`'s end: `then` gives it (or raises Refused), and may
    itself answer Later. After REPLY_WAIT_S `then` runs anyway, on the state as it is."""

    program: Program | None
    then: Callable[[], Answer]


Answer = Union[dict[str, Any], Later]  # noqa: UP007 (a forward reference)


class ControllerContext:
    s: ControllerSettings
    p: Profile
    t: Telemetry
    clock: Callable[[], float]
    wall: Callable[[], float]
    runner: Runner
    _out: list[Action]
    sm: Lifecycle
    reason: str
    faults: list[Fault]
    requested_w: float  # signed: + discharge, - charge
    applied_w: float
    pending_recovery_w: float | None
    limits: Limits
    operator_limit: tuple[float | None, float | None]  # cmd/limit (charge_w, discharge_w)
    _setpoint_work: Program | None
    _sequence_work: Program | None
    _stop_work: Program | None
    _heartbeat_work: Program | None
    _enabling: bool
    _energised_since: float | None
    _stop_failed: bool
    _connect_deadline: float | None
    _last_write: float
    _due: dict[str, float]
    _boot_at: float
    grid_out: Any  # edge.controller.grid.GridOut | None: the last controller-side result
    _booted: bool

    @property
    def state(self) -> St:
        return self.sm.state_id

    def _goto(self, event: str, reason: str) -> None:
        before = self.state
        self.sm.send(event)
        self.reason = reason
        after = self.state
        if after in ENERGISED and self._energised_since is None:
            self._energised_since = self.clock()
        self._emit({"kind": "transition", "from": before, "to": after, "reason": reason})
        self._changed()

    def _every(self, name: str, interval: float) -> bool:
        """A timer on the injected clock, polled from tick(): True once per `interval`."""
        now = self.clock()
        due = self._due.get(name)
        if due is None or now >= due:
            self._due[name] = now + interval
            return True
        return False

    def _emit(self, event: dict[str, Any]) -> None:
        event.setdefault("ts", round(self.wall(), 3))
        self._out.append(Emit(event))

    def _changed(self) -> None:
        if not self._out or not isinstance(self._out[-1], Changed):
            self._out.append(Changed())

    @staticmethod
    def _running(program: Program | None) -> bool:
        return program is not None and not program.done

    @staticmethod
    def _after(program: Program | None, then: Callable[[], Answer]) -> Answer:
        """The reply once `program` has ended, so it carries its outcome."""
        if program is None or program.done:
            return then()
        return Later(program, then)

    def _map(self, answer: Answer, f: Callable[[dict[str, Any]], dict[str, Any]]) -> Answer:
        """`answer` with `f` applied to the reply it gives, now or later."""
        if isinstance(answer, Later):
            inner = answer
            return Later(inner.program, lambda: self._map(inner.then(), f))
        return f(answer)

    # -- implemented by the parts (declared here so one part may call another) ------------
    def snapshot(self) -> dict[str, Any]:
        raise NotImplementedError

    def _reply(self) -> dict[str, Any]:
        raise NotImplementedError

    def _native_grid_stages(self) -> list[Stage]:
        raise NotImplementedError

    def grid_stage(self, want: Any, site: Any) -> Any:
        raise NotImplementedError

    def grid_settle(self, applied_w: float, pv_w: float | None) -> None:
        raise NotImplementedError

    def grid_runs_here(self) -> bool:
        raise NotImplementedError

    def grid_var_due(self) -> bool:
        raise NotImplementedError

    def _grid_var_stage(self) -> Stage:
        raise NotImplementedError

    def _not_allowed(self, command: str, *events: str, extra: str = "") -> Refused:
        raise NotImplementedError

    def _start(self, reason: str) -> None:
        raise NotImplementedError

    def _run_stop(self) -> Program:
        raise NotImplementedError

    def _trip(self, faults: list[Fault], reason: str, run_stop: bool = True) -> None:
        raise NotImplementedError

    def _cancel_work(self, keep_stop: bool = False) -> None:
        raise NotImplementedError

    def _spawn_setpoint(self, pf: float | None = None, immediate_zero: bool = False) -> Program:
        raise NotImplementedError

    def _command_setpoint(self, pf: float | None = None) -> Answer:
        raise NotImplementedError

    def _protect_hold(self, reason: str, event: str) -> Answer:
        raise NotImplementedError

    def _check_soc(self) -> None:
        raise NotImplementedError

    def _recovery_done(self) -> bool:
        raise NotImplementedError

    def _end_recovery(self) -> Answer:
        raise NotImplementedError

    def _fault_causes(self) -> list[Fault]:
        raise NotImplementedError

    def site_view(self) -> SiteView:
        raise NotImplementedError

    def _select_manual(
        self, signed_w: float, source: str = "command", reason: str | None = None
    ) -> None:
        raise NotImplementedError

    def _next_step(self) -> float:
        raise NotImplementedError

    def _through_pipeline(self, want_w: float, ramp: bool = True) -> Applied:
        raise NotImplementedError

    def _fields(self, command: str, body: dict[str, Any], allowed: set[str]) -> None:
        raise NotImplementedError

    def _refuse_in_fault(self, command: str) -> None:
        raise NotImplementedError

    def _update_limits(self) -> None:
        raise NotImplementedError

    def _bound_label(self, bound: str) -> str:
        raise NotImplementedError

    def _control_now(self) -> Program | None:
        raise NotImplementedError

    def _hold(self, source: str = "command", reason: str | None = None) -> Answer:
        raise NotImplementedError

    def _charge(self, w: float, pf: float | None) -> Answer:
        raise NotImplementedError

    def _discharge(self, w: float, pf: float | None) -> Answer:
        raise NotImplementedError
