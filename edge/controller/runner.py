"""Programs: the controller's multi-write work (start, stop, a setpoint) as data, run by the
core one confirmed write at a time, without tasks or awaits.

A `Program` is a list of stages; a stage's plan is computed when the stage is reached (so a
setpoint is computed with the limits in force at that moment), and its writes are sent one at a
time, each only after the previous one was confirmed. Programs run in named lanes, at most one
per lane: starting a program in a lane supersedes the one there, and `cancel` drops it (the
write in flight is cancelled through the shell). A failed write ends the program, or, for a
program that `keeps_going` (the stop sequence), ends only its stage. When a program ends, for
whatever reason, its `on_done` gets the errors and every reply waiting on it is answered.
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.controller.actions import Action, Cancel, Write
from edge.controller.plan import Plan, PointWrite, Unsupported, WriteFailed, check_reply

log = logging.getLogger(__name__)


@dataclass
class Stage:
    name: str
    plan: Callable[[], Plan]
    after: Callable[[], None] | None = None  # every write of the stage was confirmed


@dataclass(eq=False)
class Program:
    name: str
    stages: list[Stage]
    on_done: Callable[[list[Exception]], None] = lambda _errors: None
    keeps_going: bool = False  # every stage is tried even if one before failed
    errors: list[Exception] = field(default_factory=list)
    done: bool = False
    cancelled: bool = False
    _next: int = 0
    _queue: deque[PointWrite] = field(default_factory=deque)
    _stage: Stage | None = None
    _ticket: int | None = None


class Runner:
    def __init__(self, out: Callable[[Action], None], finished: Callable[[Program], None]) -> None:
        self._out = out
        self._finished = finished
        self._lanes: dict[str, Program] = {}
        self._tickets: dict[int, tuple[Program, PointWrite]] = {}
        self._last_ticket = 0

    def run(self, lane: str, program: Program) -> Program:
        """Start `program` in `lane`, superseding the one there."""
        self.cancel(lane)
        self._lanes[lane] = program
        self._advance(program)
        return program

    def running(self, lane: str) -> Program | None:
        p = self._lanes.get(lane)
        return p if p is not None and not p.done else None

    def busy(self) -> bool:
        return any(not p.done for p in self._lanes.values())

    def cancel(self, lane: str) -> None:
        p = self._lanes.pop(lane, None)
        if p is None or p.done:
            return
        p.cancelled = True
        if p._ticket is not None:
            self._tickets.pop(p._ticket, None)
            self._out(Cancel(p._ticket))
            p._ticket = None
        self._end(p, call_done=False)

    def write_done(self, ticket: int, reply: object) -> None:
        """The reply to write `ticket` (None: none came in time). Unknown tickets (work that
        was cancelled meanwhile) are ignored."""
        entry = self._tickets.pop(ticket, None)
        if entry is None:
            return
        program, w = entry
        program._ticket = None
        why = check_reply(reply, w.value, w.tol)
        if why is not None:
            self._fail(program, WriteFailed.of(w, why))
        self._advance(program)

    # -- internals -------------------------------------------------------------------------
    def _advance(self, p: Program) -> None:
        while not p.done:
            if p._queue:
                w = p._queue.popleft()
                self._last_ticket += 1
                p._ticket = self._last_ticket
                self._tickets[p._ticket] = (p, w)
                self._out(Write(p._ticket, w))
                return
            if p._stage is not None:
                stage, p._stage = p._stage, None
                if stage.after is not None:
                    stage.after()
                continue
            if p._next >= len(p.stages):
                self._end(p, call_done=True)
                return
            stage = p.stages[p._next]
            p._next += 1
            try:
                plan = stage.plan()
                if inspect.isawaitable(plan):
                    plan.close()  # type: ignore[attr-defined]
                    raise TypeError(
                        f"{stage.name}: the profile returned a coroutine; profile methods "
                        "return a plan (a list of PointWrite), they do not write"
                    )
                p._queue = deque(plan)
            except (WriteFailed, Unsupported) as exc:
                self._fail(p, exc)
                continue
            except Exception as exc:  # a profile bug must not leave the work half-done
                log.exception("%s: planning %s failed", p.name, stage.name)
                self._fail(p, WriteFailed("", "", stage.name, None, f"{type(exc).__name__}: {exc}"))
                continue
            p._stage = stage

    def _fail(self, p: Program, exc: Exception) -> None:
        """Record the error; end the program, or only the stage when it keeps going (the
        caller then advances to the next stage)."""
        p.errors.append(exc)
        if p.keeps_going:
            p._queue.clear()
            p._stage = None  # the stage failed: its `after` does not run
        else:
            self._end(p, call_done=True)

    def _end(self, p: Program, call_done: bool) -> None:
        p.done = True
        for lane, q in list(self._lanes.items()):
            if q is p:
                del self._lanes[lane]
        if call_done:
            try:
                p.on_done(p.errors)
            except Exception:
                log.exception("%s: completion failed", p.name)
        self._finished(p)
