"""The asyncio shell around the controller core: it performs the core's actions.

`Controller` feeds the core its events and carries out what it asks: each `Write` runs in a
task (made by the shell's `Jobs` runner) through the profile's `DeviceWriter` port and its reply
goes back to the core; a `Cancel` cancels that task; a `Reply` completes the awaiting
`command()`; `Emit` and `Changed` go to the `on_event`/`on_change` callbacks; a `StartTimer`
becomes a `loop.call_later`. The MQTT service binds the port to set topics; tests bind it to
fake devices. The core's state (`state`, `faults`, `limits`, `snapshot()`, ...) is read through
this object.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from edge.controller.actions import Action, Cancel, Changed, Emit, Reply, StartTimer, Write
from edge.controller.config import ControllerSettings
from edge.controller.context import REPLY_WAIT_S
from edge.controller.core import ControllerCore
from edge.controller.errors import Refused
from edge.controller.jobs import Jobs
from edge.controller.profiles import Profile
from edge.controller.telemetry import Telemetry

log = logging.getLogger(__name__)

REPLY_MARGIN_S = 1.0  # the core answers by REPLY_WAIT_S; this bounds the wait if it did not


class Controller:
    # Slots: writing a core attribute through this object is an error, not a silent copy.
    __slots__ = (
        "_last_request",
        "_on_change",
        "_on_event",
        "_replies",
        "_timers",
        "_writer",
        "_writes",
        "core",
        "jobs",
    )

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
        self.core = ControllerCore(settings, profile, telemetry, clock=clock, wall=wall)
        self._writer = profile.writer
        self._on_event = on_event
        self._on_change = on_change
        self.jobs = jobs or Jobs()  # the service passes its own; tests get one each
        self._writes: dict[int, asyncio.Task[None]] = {}
        self._replies: dict[int, asyncio.Future[Reply]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._last_request = 0

    def __getattr__(self, name: str) -> Any:
        """The core's state and helpers (`state`, `faults`, `snapshot()`, ...)."""
        return getattr(self.core, name)

    # -- events in -------------------------------------------------------------------------
    def on_point(self, device: str, model: str, point: str, value: Any) -> None:
        self.core.on_point(device, model, point, value)
        self._perform()

    def on_status(self, device: str, status: str) -> None:
        self.core.on_status(device, status)
        self._perform()

    def tick(self) -> None:
        self.core.tick()
        self._perform()

    async def command(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Run one command; returns the accepted reply's fields or raises Refused."""
        self._last_request += 1
        request = self._last_request
        reply: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._replies[request] = reply
        try:
            self.core.command(request, name, body)
            self._perform()
            answer = await asyncio.wait_for(reply, REPLY_WAIT_S + REPLY_MARGIN_S)
        finally:
            self._replies.pop(request, None)
        if answer.refused is not None:
            raise answer.refused
        assert answer.body is not None
        return answer.body

    # -- actions out -----------------------------------------------------------------------
    def _perform(self) -> None:
        for action in self.core.take():
            self._do(action)

    def _do(self, action: Action) -> None:
        if isinstance(action, Write):
            task = self.jobs.spawn(self._write(action), f"write {action.write.point}")
            self._writes[action.ticket] = task
        elif isinstance(action, Cancel):
            dropped = self._writes.pop(action.ticket, None)
            if dropped is not None:
                dropped.cancel()
        elif isinstance(action, Reply):
            fut = self._replies.get(action.request)
            if fut is not None and not fut.done():
                fut.set_result(action)
        elif isinstance(action, Emit):
            self._call(self._on_event, action.event)
        elif isinstance(action, Changed):
            self._call(self._on_change)
        elif isinstance(action, StartTimer):
            loop = asyncio.get_running_loop()
            self._timers[action.name] = loop.call_later(action.delay_s, self._timer, action.name)

    async def _write(self, action: Write) -> None:
        w = action.write
        try:
            reply: Any = await self._writer.write(w.device, w.model, w.point, w.value)
        except TimeoutError:
            reply = None
        except Exception as exc:  # a writer bug is a failed write, never a stuck sequence
            log.exception("write %s/%s/%s failed", w.device, w.model, w.point)
            reply = {"ok": False, "error": {"code": "write_error", "message": repr(exc)}}
        finally:
            self._writes.pop(action.ticket, None)
        self.core.write_done(action.ticket, reply)
        self._perform()

    def _timer(self, name: str) -> None:
        self._timers.pop(name, None)
        self.core.timer(name)
        self._perform()

    @staticmethod
    def _call(f: Callable[..., None], *args: Any) -> None:
        try:
            f(*args)
        except Exception:
            log.exception("controller callback failed")

    # -- lifecycle -------------------------------------------------------------------------
    async def idle(self, timeout: float = 5.0) -> None:
        """Wait until no write is in flight (tests, shutdown). Bounded."""
        await self.jobs.idle(timeout)

    async def close(self) -> None:
        """Cancel every write and timer (used when the service stops)."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        await self.jobs.close()


__all__ = ["Controller", "Refused"]
