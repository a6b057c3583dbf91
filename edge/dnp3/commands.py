"""DNP3 controls -> controller commands, and controller replies -> DNP3 command status. Pure.

A control either becomes one controller command (`Send`), sent over MQTT exactly like an
operator's, through the same validation, pipeline and replies; or it is answered at once
(`Answer`): a parameter stored, a point that maps to nothing yet, a value out of the map's
range. Nothing is changed here until `commit()` is called with the outcome, so a refused
command leaves the stored parameters as they were.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dnp3.core.enums import CommandStatus

from edge.dnp3.pointmap import AnalogOutput, PointMap

# Controller refusal codes (topics.md) -> DNP3 command status (IEEE 1815 Table 4-5 names).
REFUSAL_STATUS = {
    "out_of_range": CommandStatus.OUT_OF_RANGE,
    "invalid_payload": CommandStatus.FORMAT_ERROR,
    "not_allowed_in_state": CommandStatus.BLOCKED,
    "fault_active": CommandStatus.HARDWARE_ERROR,
    "unknown_command": CommandStatus.NOT_SUPPORTED,
}
# The controller is downstream of the outstation: no reply, offline or failed -> DOWNSTREAM_FAIL.
NO_REPLY_STATUS = CommandStatus.DOWNSTREAM_FAIL
GRID_SUPPORT_NOTE = "no controller command maps to this point"
GridState = Callable[[], dict[str, Any] | None]  # the controller state's `grid.functions`


@dataclass(frozen=True)
class Answer:
    status: CommandStatus
    message: str
    params: dict[str, float] = field(default_factory=dict)  # stored on commit when SUCCESS


@dataclass(frozen=True)
class Send:
    command: str
    body: dict[str, Any]
    enables: str | None  # the DNP3 mode this selects ("" = none), None = leaves it as is
    params: dict[str, float] = field(default_factory=dict)
    limit_on: bool | None = None  # the active power limit enabled / cleared; None: as is


Decision = Answer | Send


def reply_status(reply: dict[str, Any] | None) -> tuple[CommandStatus, str]:
    """The DNP3 status for a controller reply (None: no reply in time)."""
    if reply is None:
        return NO_REPLY_STATUS, "no reply from the controller in time"
    if reply.get("ok") is True:
        return CommandStatus.SUCCESS, str(reply.get("state", ""))
    raw = reply.get("error")
    err: dict[str, Any] = raw if isinstance(raw, dict) else {}
    code = str(err.get("code", ""))
    return REFUSAL_STATUS.get(code, NO_REPLY_STATUS), f"{code}: {err.get('message', '')}"


class ControlMap:
    """The control side of the point map, with the parameters written by the master."""

    def __init__(
        self,
        pointmap: PointMap,
        remote_control: bool,
        wall: Callable[[], float],
        grid: GridState = lambda: None,
    ) -> None:
        self.pm = pointmap
        self.remote_control = remote_control
        self.wall = wall
        self.grid = grid
        self.params: dict[str, float] = {"charge_discharge.power_w": 0.0}
        self.enabled: str = ""  # "charge_discharge" | "coordinated" | ""
        self.limit_on = False  # BO 5: the active power limit (cmd/limit) is in force

    # -- decisions ---------------------------------------------------------------------
    def binary(self, index: int, on: bool | None, how: str) -> Decision:
        """`how`: "select", "operate" (after a matching select) or "direct"."""
        p = self.pm.binary_output(index)
        if p is None:
            return Answer(CommandStatus.NOT_SUPPORTED, f"binary output {index}: not in the map")
        gate = self._gate(p.name, p.sbo, how)
        if gate is not None:
            return gate
        if p.action == "grid_support":
            return Answer(CommandStatus.NOT_SUPPORTED, f"{p.name}: {GRID_SUPPORT_NOTE}")
        if on is None:
            return Answer(CommandStatus.NOT_SUPPORTED, f"{p.name}: control code not supported")
        if how == "select":
            return Answer(CommandStatus.SUCCESS, f"{p.name}: selected")
        if p.action.startswith("grid:"):
            fn = p.action.removeprefix("grid:")
            return Send("grid", {"function": fn, "params": {"enabled": on}}, None)
        if p.action == "limit":
            return self._limit_command(on, {}, p.name)
        if p.action == "start_stop":
            return Send("start" if on else "stop", {}, None if on else "")
        if p.action in ("hold", "reset"):
            if not on:
                return Answer(CommandStatus.SUCCESS, f"{p.name}: off does nothing")
            return Send(p.action, {}, "" if p.action == "hold" else None)
        if not on:
            if self.enabled != p.action:
                return Answer(CommandStatus.SUCCESS, f"{p.name}: already off")
            return Send("hold", {}, "")
        return self._mode_command(p.action, {}, p.name)

    def analog(self, index: int, value: float, how: str) -> Decision:
        p = self.pm.analog_output(index)
        if p is None:
            return Answer(CommandStatus.NOT_SUPPORTED, f"analog output {index}: not in the map")
        gate = self._gate(p.name, p.sbo, how)
        if gate is not None:
            return gate
        if p.param is None and p.grid is None:
            return Answer(CommandStatus.NOT_SUPPORTED, f"{p.name}: {GRID_SUPPORT_NOTE}")
        eng = value / p.scale
        if not math.isfinite(eng) or not p.min <= eng <= p.max:
            return Answer(
                CommandStatus.OUT_OF_RANGE,
                f"{p.name}: {value:g} ({eng:g} {p.unit}) outside [{p.min:g}, {p.max:g}]",
            )
        if how == "select":
            return Answer(CommandStatus.SUCCESS, f"{p.name}: selected")
        if p.grid is not None:
            return self._grid_command(*p.grid, eng, p.name)
        assert p.param is not None
        new = {p.param: eng}
        mode = p.param.split(".", 1)[0]
        if mode == "limit" and self.limit_on:  # in force: the new value applies now
            return self._limit_command(True, new, p.name)
        if self.enabled == mode:  # the mode runs: apply the new parameter now
            return self._mode_command(mode, new, p.name)
        return Answer(CommandStatus.SUCCESS, f"{p.name} = {eng:g} {p.unit}", new)

    def commit(self, decision: Decision, status: CommandStatus) -> None:
        """Record the outcome: parameters and the enabled mode change only on SUCCESS."""
        if status != CommandStatus.SUCCESS:
            return
        self.params.update(decision.params)
        if isinstance(decision, Send) and decision.enables is not None:
            self.enabled = decision.enables
        if isinstance(decision, Send) and decision.limit_on is not None:
            self.limit_on = decision.limit_on

    def readback(self, p: AnalogOutput) -> float | None:
        """The engineering value an analog output reads back as (g40): the stored parameter,
        or what the controller's `grid` state holds now; None when not known."""
        if p.param is not None:
            return self.params.get(p.param)
        if p.grid is None:
            return None
        fn, key = p.grid
        params = self._grid_params(fn)
        if params is None:
            return None
        if key.startswith("points."):
            _, i, xy = key.split(".")
            pts = params.get("points")
            if not isinstance(pts, list) or int(i) >= len(pts):
                return None
            v = pts[int(i)][0 if xy == "x" else 1]
        else:
            v = params.get(key)
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        return float(v) if ok else None

    # -- helpers -----------------------------------------------------------------------
    def _grid_params(self, fn: str) -> dict[str, Any] | None:
        funcs = self.grid()
        f = funcs.get(fn) if isinstance(funcs, dict) else None
        params = f.get("params") if isinstance(f, dict) else None
        return params if isinstance(params, dict) else None

    def _grid_command(self, fn: str, key: str, eng: float, name: str) -> Decision:
        """One `cmd/grid` request. A curve coordinate replaces that point of the curve the
        controller holds now (its state topic), so the whole curve is validated again."""
        if not key.startswith("points."):
            return Send("grid", {"function": fn, "params": {key: eng}}, None)
        held = self._grid_params(fn)
        pts = held.get("points") if held is not None else None
        if not isinstance(pts, list):
            return Answer(NO_REPLY_STATUS, f"{name}: the controller's {fn} curve is not known yet")
        _, i, xy = key.split(".")
        if int(i) >= len(pts):
            return Answer(
                CommandStatus.OUT_OF_RANGE,
                f"{name}: the {fn} curve has {len(pts)} points, no point {i}",
            )
        new = [list(pt) for pt in pts]
        new[int(i)][0 if xy == "x" else 1] = eng
        return Send("grid", {"function": fn, "params": {"points": new}}, None)

    def _gate(self, name: str, sbo: bool, how: str) -> Answer | None:
        if not self.remote_control:
            return Answer(CommandStatus.LOCAL, f"{name}: remote control is off ([dnp3])")
        if sbo and how == "direct":
            return Answer(CommandStatus.NOT_SUPPORTED, f"{name}: select-before-operate required")
        return None

    def _limit_command(self, on: bool, new: dict[str, float], name: str) -> Decision:
        """cmd/limit: the same W both ways when on, cleared (null) when off. The controller
        combines it with min() into the limits in force, so it can only lower them."""
        if not on:
            return Send("limit", {"charge_w": None, "discharge_w": None}, None, new, False)
        w = {**self.params, **new}.get("limit.power_w")
        if w is None:
            return Answer(CommandStatus.FORMAT_ERROR, f"{name}: limit.power_w is not set yet")
        return Send("limit", {"charge_w": w, "discharge_w": w}, None, new, True)

    def _mode_command(self, mode: str, new: dict[str, float], name: str) -> Decision:
        params = {**self.params, **new}
        if mode == "charge_discharge":
            w = params["charge_discharge.power_w"]
            if w == 0:
                return Send("hold", {}, mode, new)
            cmd = "discharge" if w > 0 else "charge"
            return Send(cmd, {"power_w": abs(w)}, mode, new)
        missing = [k for k in ("target_soc", "duration_min") if f"coordinated.{k}" not in params]
        if missing:
            return Answer(
                CommandStatus.FORMAT_ERROR, f"{name}: coordinated.{missing[0]} is not set yet"
            )
        by = self.wall() + params["coordinated.duration_min"] * 60.0
        body: dict[str, Any] = {
            "target_soc": params["coordinated.target_soc"],
            "by": dt.datetime.fromtimestamp(by, dt.UTC).isoformat(timespec="seconds"),
        }
        if params.get("coordinated.max_power_w"):
            body["max_power_w"] = params["coordinated.max_power_w"]
        return Send("mode", {"mode": "soc_target", "params": body}, mode, new)
