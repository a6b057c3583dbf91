"""What a mode sees, what it returns, and the class every mode derives from.

A mode is pure: telemetry, its parameters and the clock in (a `SiteView`), the battery power it
wants out (a `Want`). It does no I/O and keeps no timers. Whatever it wants then passes the
setpoint pipeline (edge.controller.pipeline), which no mode can bypass.

Signs (topics.md "Power signs"): battery + = discharge, - = charge; grid + = import;
PV >= 0; grid = load - pv - battery.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from marshmallow import RAISE, Schema, fields


@dataclass(frozen=True)
class SiteView:
    """What a mode may look at; built by the controller (or a backtest) each tick."""

    now: float  # unix seconds, from the injected clock
    soc: float | None  # %
    battery_w: float | None  # measured battery/inverter AC power (+ discharge)
    grid_w: float | None  # meter at the point of connection (+ import); None if no/stale meter
    pv_w: float | None  # PV generation (>= 0); None when the site has no PV
    meter_fresh: bool  # False when the meter is offline or its data is stale
    charge_limit_w: float  # >= 0: the limits in force (battery and inverter)
    discharge_limit_w: float  # >= 0
    capacity_wh: float | None
    setpoint_w: float  # the setpoint currently applied (+ discharge)
    voltage_v: float | None = None  # meter phase voltage at the point of connection
    freq_hz: float | None = None  # meter frequency at the point of connection


@dataclass(frozen=True)
class Want:
    """The battery power a mode wants (+ discharge, - charge) and why, in one line."""

    power_w: float
    why: str


class ParamsSchema(Schema):
    """Base of every mode's parameter schema: an unknown key is an error naming it."""

    class Meta:
        unknown = RAISE


class Mode(ABC):
    """One operating mode. Subclasses set `name`, `params_schema`, `needs_meter`, `step`."""

    name: ClassVar[str]
    params_schema: ClassVar[type[Schema]]
    # True: the mode acts on the meter, so a stale or offline meter makes it fall back to hold.
    needs_meter: ClassVar[bool] = False

    def __init__(self, params: Mapping[str, Any]) -> None:
        """`params` are already validated by `params_schema` (registry.load_mode)."""
        self.params: dict[str, Any] = dict(params)

    @abstractmethod
    def step(self, site: SiteView) -> Want:
        """The battery power wanted now. Pure: same view and params, same answer."""


def kw(w: float) -> str:
    """A power for a `why` line: `52.1 kW`."""
    return f"{w / 1000:.1f} kW"


def battery_now(site: SiteView) -> float:
    """The battery power the meter reading includes: the setpoint in force.

    Closed-loop modes integrate on the meter error from the applied setpoint, not from the
    measured battery power: the two are polled at different moments, and mixing them turns a
    poll delay into positive feedback.
    """
    return site.setpoint_w


class Number(fields.Float):
    """A JSON number, nothing else: no strings, no booleans, no NaN or infinity."""

    default_error_messages = {
        "invalid": "expected a number",
        "special": "must be a finite number",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        try:
            f = float(value)
        except OverflowError:
            raise self.make_error("special") from None
        if not math.isfinite(f):
            raise self.make_error("special")
        return f


class Flag(fields.Boolean):
    """A JSON true or false, nothing else (not 1, not "yes")."""

    default_error_messages = {"invalid": "expected true or false"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value
