"""The controller's transition table, as a python-statemachine `StateMachine`.

The machine only says which transitions exist; the work a transition starts (a program of
device writes, runner.py) is run by the core one confirmed write at a time, so a new command
can arrive while it is in progress. `stop` and `fault` leave every state; `fault` is left only
by `reset` (latched).
"""

from __future__ import annotations

from enum import StrEnum

from statemachine import State, StateMachine


class St(StrEnum):
    """The controller's states, as on the state topic (a StrEnum: equal to its name)."""

    STOPPED = "stopped"
    STARTING = "starting"
    CONNECTING = "connecting"
    HOLDING = "holding"
    CHARGING = "charging"
    DISCHARGING = "discharging"
    SOC_RECOVERY = "soc_recovery"
    STOPPING = "stopping"
    FAULT = "fault"


STATES = tuple(St)
# States in which power may flow and a setpoint is in force.
ACTIVE = frozenset({St.HOLDING, St.CHARGING, St.DISCHARGING, St.SOC_RECOVERY})
# States in which the devices may be energised (monitors run: SoC, faults, heartbeat).
ENERGISED = frozenset({St.STARTING, St.CONNECTING, *ACTIVE, St.STOPPING})


class BessMachine(StateMachine):
    stopped = State(initial=True)
    starting = State()
    connecting = State()
    holding = State()
    charging = State()
    discharging = State()
    soc_recovery = State()
    stopping = State()
    fault = State()

    # -- start sequence ----------------------------------------------------------------------
    start = stopped.to(starting)
    contactors_closed = starting.to(connecting)
    connected = connecting.to(holding)
    connected_recover = connecting.to(soc_recovery)
    # -- operator commands (original: only once connected) ---------------------------------
    hold = holding.to.itself() | charging.to(holding) | discharging.to(holding)
    charge = (
        holding.to(charging)
        | charging.to.itself()
        | discharging.to(charging)
        | soc_recovery.to(charging)
    )
    discharge = holding.to(discharging) | charging.to(discharging) | discharging.to.itself()
    recover = (
        holding.to(soc_recovery)
        | charging.to(soc_recovery)
        | discharging.to(soc_recovery)
        | soc_recovery.to.itself()
    )
    # -- SoC protection --------------------------------------------------------------------
    soc_high = charging.to(holding)
    soc_low = holding.to(soc_recovery) | discharging.to(soc_recovery)
    recovered = soc_recovery.to(holding)
    # -- stop: from every state; fault keeps its latch while the stop sequence runs --------
    stop = (
        stopped.to(stopping)
        | starting.to(stopping)
        | connecting.to(stopping)
        | holding.to(stopping)
        | charging.to(stopping)
        | discharging.to(stopping)
        | soc_recovery.to(stopping)
        | stopping.to.itself()
        | fault.to.itself()
    )
    stop_done = stopping.to(stopped)
    # -- faults ----------------------------------------------------------------------------
    trip = (
        stopped.to(fault)
        | starting.to(fault)
        | connecting.to(fault)
        | holding.to(fault)
        | charging.to(fault)
        | discharging.to(fault)
        | soc_recovery.to(fault)
        | stopping.to(fault)
        | fault.to.itself()
    )
    reset = fault.to(stopped)

    @property
    def state_id(self) -> St:
        return St(next(iter(self.configuration)).id)

    @classmethod
    def table(cls) -> dict[tuple[St, str], St]:
        """(state, event) -> target, read once from the transitions declared above."""
        table: dict[tuple[St, str], St] | None = cls.__dict__.get("_table")
        if table is None:
            table = {
                (St(s.id), str(e.id)): St(t.target.id)
                for s in cls.states
                for t in s.transitions
                for e in t.events
                if t.target is not None
            }
            cls._table = table  # type: ignore[attr-defined]
        return table

    def can(self, event: str) -> bool:
        """Is `event` a transition out of the current state? (Table lookup: commands ask this
        on every request, and walking `allowed_events` costs more than the command.)"""
        return (self.state_id, event) in self.table()


class NotAllowed(Exception):
    """An event that is no transition out of the current state (a controller bug if raised:
    commands ask `can` first and refuse)."""


class Lifecycle:
    """The controller's current state, moved by the table declared in `BessMachine`.

    One dict lookup per event (h11's way): the declaration stays the python-statemachine class
    above, read once; the controller runs no statemachine engine per command.
    """

    def __init__(self) -> None:
        self._table = BessMachine.table()
        self.state_id = St(BessMachine.initial_state.id)

    def can(self, event: str) -> bool:
        return (self.state_id, event) in self._table

    def send(self, event: str) -> St:
        target = self._table.get((self.state_id, event))
        if target is None:
            raise NotAllowed(f"{event}: no transition from {self.state_id}")
        self.state_id = target
        return target


def sources(*events: str) -> tuple[St, ...]:
    """The states any of `events` leaves, in STATES order: refusal messages' "allowed in"."""
    table = BessMachine.table()
    return tuple(st for st in STATES if any((st, e) in table for e in events))


def allowed_in(*events: str) -> str:
    return ", ".join(sources(*events))
