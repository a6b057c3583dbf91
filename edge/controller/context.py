"""What the controller's parts share: its state, its ports, transitions and plumbing.

The Controller (core.py) is assembled from one part per job: commands.py (typed command
bodies and replies), sequences.py (start and stop), setpoint.py (pipeline, write, lease),
monitors.py (SoC, faults, heartbeat, restart) and operating.py (modes and the schedule).
Each part derives from `ControllerContext`, which holds the shared attributes and declares the
few methods one part calls in another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from edge.controller.config import ControllerSettings
from edge.controller.errors import Refused
from edge.controller.faults import Fault
from edge.controller.jobs import Jobs
from edge.controller.limits import Limits
from edge.controller.machine import ENERGISED, BessMachine, St
from edge.controller.modes.base import SiteView
from edge.controller.pipeline import Applied
from edge.controller.profiles import Profile
from edge.controller.telemetry import Telemetry

log = logging.getLogger(__name__)

REPLY_WAIT_S = 4.0  # a reply always leaves before the requester's 5 s timeout (topics.md)
Task = asyncio.Task[None]


class ControllerContext:
    s: ControllerSettings
    p: Profile
    t: Telemetry
    clock: Callable[[], float]
    wall: Callable[[], float]
    jobs: Jobs
    sm: BessMachine
    reason: str
    faults: list[Fault]
    requested_w: float  # signed: + discharge, - charge
    applied_w: float
    pending_recovery_w: float | None
    limits: Limits
    operator_limit: tuple[float | None, float | None]  # cmd/limit (charge_w, discharge_w)
    _on_event: Callable[[dict[str, Any]], None]
    _on_change: Callable[[], None]
    _sp_task: Task | None
    _seq_task: Task | None
    _stop_task: Task | None
    _hb_task: Task | None
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
        try:
            self._on_event(event)
        except Exception:
            log.exception("event callback failed")

    def _changed(self) -> None:
        try:
            self._on_change()
        except Exception:
            log.exception("change callback failed")

    @staticmethod
    def _running(task: Task | None) -> bool:
        return task is not None and not task.done()

    async def _await(self, task: Task | None) -> None:
        """Wait (bounded) for transitional work so the reply carries its outcome."""
        if task is not None and not task.done():
            await asyncio.wait([task], timeout=REPLY_WAIT_S)

    # -- implemented by the parts (declared here so one part may call another) ------------
    def snapshot(self) -> dict[str, Any]:
        raise NotImplementedError

    def _reply(self) -> dict[str, Any]:
        raise NotImplementedError

    async def _write_native_grid(self) -> None:
        raise NotImplementedError

    def grid_stage(self, want: Any, site: Any) -> Any:
        raise NotImplementedError

    def grid_settle(self, applied_w: float, pv_w: float | None) -> None:
        raise NotImplementedError

    def grid_runs_here(self) -> bool:
        raise NotImplementedError

    def grid_var_due(self) -> bool:
        raise NotImplementedError

    async def _write_grid_var(self) -> None:
        raise NotImplementedError

    def _not_allowed(self, command: str, *events: str, extra: str = "") -> Refused:
        raise NotImplementedError

    def _start(self, reason: str) -> None:
        raise NotImplementedError

    async def _stop_sequence(self) -> None:
        raise NotImplementedError

    def _trip(self, faults: list[Fault], reason: str) -> None:
        raise NotImplementedError

    def _cancel_work(self, keep_stop: bool = False) -> None:
        raise NotImplementedError

    def _spawn_setpoint(self, pf: float | None = None, immediate_zero: bool = False) -> Task:
        raise NotImplementedError

    async def _command_setpoint(self, pf: float | None = None) -> dict[str, Any]:
        raise NotImplementedError

    async def _protect_hold(self, reason: str, event: str) -> dict[str, Any]:
        raise NotImplementedError

    def _check_soc(self) -> None:
        raise NotImplementedError

    def _recovery_done(self) -> bool:
        raise NotImplementedError

    async def _end_recovery(self) -> dict[str, Any]:
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

    async def _control_now(self) -> None:
        raise NotImplementedError

    async def _hold(self, source: str = "command", reason: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    async def _charge(self, w: float, pf: float | None) -> dict[str, Any]:
        raise NotImplementedError

    async def _discharge(self, w: float, pf: float | None) -> dict[str, Any]:
        raise NotImplementedError
