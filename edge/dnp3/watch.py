"""Loss of the DNP3 master: when to fall back, and what the state topic says. Pure.

The watch is armed by the first control the master gets accepted: from then on the master
is commanding the site, and if it goes silent for longer than `timeout_s` the site must not
keep running its last order unattended. It is not armed while the master only monitors (a
SCADA that polls but never commands must not stop a site run by its schedule). A fallback
that gets no answer (controller or broker away) is retried every `retry_s`; one the
controller refuses (already stopped, in fault) ends the episode, since the controller then
is in a state it chose itself and says why. The master's next request ends the fallback
episode; it never resumes the previous order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class MasterWatch:
    timeout_s: float
    fallback: str = "hold"  # "hold" | "stop" | "none"
    retry_s: float = 5.0
    last_seen: float | None = None
    armed: bool = False
    active: bool = False
    since: float | None = None
    reason: str = ""
    next_try: float = 0.0
    fallbacks: int = 0

    def seen(self, now: float) -> None:
        """A valid request from the configured master."""
        self.last_seen = now
        self.active = False

    def control_accepted(self, now: float) -> None:
        self.seen(now)
        self.armed = True

    def due(self, now: float) -> bool:
        """True when the fallback command should be sent now."""
        if self.fallback == "none" or not self.armed or self.last_seen is None:
            return False
        return now - self.last_seen > self.timeout_s and now >= self.next_try

    def done(self, now: float, outcome: str, detail: str = "") -> None:
        """The outcome of the fallback command: "ok", "refused" or "no_reply"."""
        silent = now - (self.last_seen or now)
        head = f"DNP3 master silent for {silent:.0f} s"
        if outcome == "no_reply":
            self.next_try = now + self.retry_s
            self.reason = f"{head}: {self.fallback} not answered ({detail}), retrying"
            return
        self.armed = False
        self.active = True
        self.since = now
        self.fallbacks += 1
        self.reason = f"{head}: fallback {self.fallback}"
        if outcome == "refused":
            self.reason += f" refused by the controller ({detail})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.fallback,
            "timeout_s": self.timeout_s,
            "armed": self.armed,
            "active": self.active,
            "since": self.since,
            "reason": self.reason,
            "count": self.fallbacks,
        }
