"""What the controller core asks its shell to do: the core's only output.

The core is synchronous and does no I/O. Each call into it (a point, a status, a command, a
tick, a write's result, a timer) may queue actions; the shell takes them (`ControllerCore.take`)
and performs them in order: it writes a point and reports the reply back (`write_done`), drops a
write the core no longer wants, answers a command, publishes an event or the state, and starts
a timer that calls back (`timer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.controller.errors import Refused
from edge.controller.plan import PointWrite


@dataclass(frozen=True)
class Write:
    """Write one point; report the reply (or None on no reply) with `write_done(ticket, …)`."""

    ticket: int
    write: PointWrite


@dataclass(frozen=True)
class Cancel:
    """The write `ticket` is no longer wanted (its work was superseded or stopped)."""

    ticket: int


@dataclass(frozen=True)
class Reply:
    """Answer command `request`: accepted with `body`, or `refused`."""

    request: int
    body: dict[str, Any] | None = None
    refused: Refused | None = None


@dataclass(frozen=True)
class Emit:
    """Publish one event (topics.md, "Controller events")."""

    event: dict[str, Any]


@dataclass(frozen=True)
class Changed:
    """The state topic's content changed: publish it."""


@dataclass(frozen=True)
class StartTimer:
    """Call `timer(name)` after `delay_s` seconds."""

    name: str
    delay_s: float


Action = Write | Cancel | Reply | Emit | Changed | StartTimer
