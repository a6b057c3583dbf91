"""The controller's own profile in the backtest: its plans go into the simulator as writes,
and what it reads comes from the simulator's registers.

The backtest commands the inverter as the controller does, whatever the family: the start
plans of the site's profile (`edge.controller.profiles`: reset alarms, unlock, close the
contactors, power mode, power 0), one `write_power` plan per changed setpoint, the lease
rewrite every `refresh_s`, and, for a family with a watchdog (RES-125 `Heartbeat`), the
heartbeat reset whenever the profile asks for it. Each `PointWrite` goes in through
`SiteSimulator.set_value`, which tells the physics (`on_write`) as a Modbus write does; a
write to a read-only point is refused as Modbus would refuse it, and every write is checked
by read-back with the controller's own check (`check_reply`). A write the controller would not
count as confirmed is booked as a write failure, with the reason.

Reading stays cheap. The profile's `Telemetry` fetches a point the first time the profile asks
for it. The battery's points are read again when its limits move. The inverter's ratings are
read once, as nothing writes them during a run. Any other point the profile has read (the
RES-125 `Heartbeat`) is read every `POLL_S` of simulated time, as an adapter polls it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from adapters.simulator.device import SimulatedDevice
from adapters.simulator.site import SiteSimulator
from edge.controller.config import ControllerSettings
from edge.controller.limits import Limits
from edge.controller.plan import Plan, PointWrite, Unsupported, WriteFailed, check_reply
from edge.controller.profiles import Profile, profile_class
from edge.controller.telemetry import Sample, Telemetry

# How often the points the profile reads that change with time (the RES-125 `Heartbeat`) are
# read again, as an adapter polls them. 5 s: the heartbeat falls by 10 counts a second, so it
# is reset between 750 and 700 of its 931, far from 0, where the inverter stops.
POLL_S = 5.0

Key = tuple[str, str, str]
Target = tuple[SimulatedDevice | None, int | str, str | None]  # device, model key, refusal


class BacktestError(ValueError):
    """A site that cannot be backtested; the message names the key and the reason."""


class SimTelemetry(Telemetry):
    """The controller's telemetry store, filled from the simulator's registers on demand.

    `read` holds every point the profile has asked for, found or not."""

    def __init__(self, clock: Callable[[], float], sim: SiteSimulator) -> None:
        super().__init__(clock)
        self.sim = sim
        self.read: set[Key] = set()

    def sample(self, device: str, model: str | int, point: str) -> Sample | None:
        key = (device, str(model), point)
        s = self._values.get(key)
        if s is None and key not in self.read:
            self.read.add(key)
            self.refresh([key])
            s = self._values.get(key)
        return s

    def refresh(self, keys: Iterable[Key]) -> None:
        """Show each device's physics in its registers, then read the points again."""
        keys = list(keys)
        for device in {k[0] for k in keys}:
            if device in self.sim.devices:
                self.sim.device(device).publish()
        for key in keys:
            try:
                value = self.sim.value(*key)
            except KeyError:  # no such device or point: never published, as on the topic
                self._values.pop(key, None)
                continue
            self.update(*key, value)


class ProfileDriver:
    """The site's controller profile, applied to a `SiteSimulator` in simulated time."""

    def __init__(
        self, sim: SiteSimulator, settings: ControllerSettings, clock: Callable[[], float]
    ) -> None:
        self.sim = sim
        self.s = settings
        self.clock = clock
        self.t = SimTelemetry(clock, sim)
        try:
            cls: Any = profile_class(settings)
        except (ImportError, AttributeError, TypeError, KeyError) as exc:
            raise BacktestError(f"controller.profile_class: {exc}") from None
        self.profile: Profile = cls(settings, None, self.t)  # a profile does no I/O
        self._limit_points = self.profile.limit_points()
        self.polled: list[Key] = []  # what the profile has read that moves with time
        self._seen = 0  # len(self.t.read) when `polled` was made
        self.last_write = self.last_poll = self.due = clock()
        self._targets: dict[Key, Target] = {}

    # -- writes -------------------------------------------------------------------------
    def apply(self, plan: Plan) -> list[str]:
        """Make each write as a Modbus write reaches the device; returns why each write the
        controller would not count as confirmed was not (empty: all confirmed)."""
        failed = []
        for w in plan:
            why = self._write(w)
            if why is not None:
                failed.append(str(WriteFailed.of(w, why)))
        return failed

    def _write(self, w: PointWrite) -> str | None:
        target = self._targets.get((w.device, w.model, w.point))
        if target is None:
            target = self._targets[(w.device, w.model, w.point)] = self._target(w)
        dev, model, refused = target
        if dev is None or refused is not None:
            return refused
        if dev.image.kind == "pointmap" and not isinstance(w.value, int | float):
            return f"refused: invalid_payload {w.value!r} is not a number"
        try:
            dev.set_value(model, w.point, w.value)
        except (TypeError, ValueError, OverflowError) as exc:
            return f"refused: invalid_payload {exc}"
        return check_reply({"ok": True, "value": dev.value(model, w.point)}, w.value, w.tol)

    def _target(self, w: PointWrite) -> Target:
        """The device and model key a write goes to, or why Modbus would refuse it."""
        model: int | str = int(w.model) if w.model.isdigit() else w.model
        try:
            dev = self.sim.device(w.device)
            ref = dev.image.ref(model, w.point)
        except KeyError:  # UnknownPoint included
            return None, model, f"refused: unknown_point no point {w.model}/{w.point} on {w.device}"
        err = dev.image.check_write(ref.address, ref.length)  # ILLEGAL_ADDRESS over Modbus
        return dev, model, None if err is None else f"refused: read_only {err}"

    def _stage(self, name: str, make: Callable[[], Plan]) -> None:
        """One stage of the start sequence: a failure stops the backtest, as it trips the
        controller before it ever commands power."""
        try:
            failed = self.apply(make())
        except (WriteFailed, Unsupported, NotImplementedError) as exc:
            failed = [str(exc) or type(exc).__name__]
        if failed:
            raise BacktestError(f"start sequence ({self.profile.name}), {name}: {failed[0]}")

    def energise(self) -> None:
        """The controller's start sequence: alarms, unlock, contactors, wait for CONNECTED
        (the backtest's battery connects at once), power mode, power 0."""
        p = self.profile
        for name, plan in p.start_steps():
            self._stage(name, plan)
        self.t.refresh(k for k in self.t.read if k[0] == self.s.battery)
        if not p.is_connected():
            state = self.t.get(self.s.battery, p.battery_model, "State")
            raise BacktestError(
                f"start sequence ({p.name}): battery {self.s.battery} State is {state},"
                " not CONNECTED (3), after its contactors were closed"
            )
        self._stage("power mode", p.enable_power_mode)
        self._stage("power 0", lambda: p.write_power(0.0))
        self.last_write = self.clock()
        self.poll()

    def write_power(self, signed_w: float) -> list[str]:
        """The profile's setpoint plan for `signed_w` (+ discharge, - charge), written."""
        self.last_write = self.clock()
        try:
            failed = self.apply(self.profile.write_power(signed_w))
        except (WriteFailed, Unsupported) as exc:
            failed = [str(exc)]
        self._plan_due()
        return failed

    # -- time -----------------------------------------------------------------------------
    def split(self, step_s: float) -> int:
        """Into how many parts a step is cut so the lease and the polls stay on time."""
        every = min(self.s.refresh_s, POLL_S) if self.polled else self.s.refresh_s
        return max(1, -int(-step_s // every))

    def _plan_due(self) -> None:
        if len(self.t.read) != self._seen:  # the profile read a new point: poll it if it moves
            self._seen = len(self.t.read)
            bat = self.s.battery
            self.polled = sorted(k for k in self.t.read - self._limit_points if k[0] != bat)
        due = self.last_write + self.s.refresh_s
        self.due = min(due, self.last_poll + POLL_S) if self.polled else due

    def housekeeping(self, setpoint_w: float) -> list[str]:
        """The controller's work between control ticks, when `due`: the lease rewrite, the
        poll of the profile's changing points and the heartbeat reset."""
        now, failed = self.clock(), list[str]()
        if now < self.due - 1e-9:
            return failed
        if now - self.last_write >= self.s.refresh_s - 1e-9:
            failed += self.write_power(setpoint_w)
        if self.polled and now - self.last_poll >= POLL_S - 1e-9:
            failed += self.poll()
        return failed

    def poll(self) -> list[str]:
        """Read the polled points; reset the heartbeat when the profile asks for it."""
        self.last_poll = self.clock()
        self.t.refresh(self.polled)
        failed = []
        if self.profile.heartbeat_needs_reset():
            failed = self.apply(self.profile.reset_heartbeat())
        self._plan_due()
        return failed

    # -- limits ---------------------------------------------------------------------------
    def limits(self) -> Limits:
        """The controller's limits in force, from the battery's points read now and the
        inverter's ratings (both as the profile reads them)."""
        self.t.refresh(k for k in self.t.read if k[0] == self.s.battery)
        return self.profile.limits()
