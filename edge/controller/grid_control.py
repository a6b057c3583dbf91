"""Grid support in the controller: which functions the inverter runs itself (written to it,
confirmed by read-back) and which the controller runs each control tick from the meter's V
and Hz, the `cmd/grid` command, and the state topic's `grid` object.

A function runs in the inverter when the family can (the profile's `native_grid`) and the
inverter serves the model (its `Ena` point has been read); otherwise the controller computes
it between the mode and the setpoint pipeline (edge.controller.grid.stage).
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import replace
from typing import Any

from edge.controller.context import Answer, ControllerContext
from edge.controller.errors import Refused
from edge.controller.grid import GridOut, GridSettings, GridState, apply_grid
from edge.controller.grid.settings import FUNCTIONS
from edge.controller.grid.stage import report
from edge.controller.modes.base import SiteView, Want
from edge.controller.plan import Plan
from edge.controller.runner import Program, Stage
from edge.controller.sequences import GRID

ENA_POINT = {"volt_var": ("705", "Ena"), "volt_watt": ("706", "Ena"),
             "freq_watt": ("711", "Ena"), "pf": ("704", "PFWInjEna")}  # fmt: skip


class GridControl(ControllerContext):
    grid: GridSettings
    grid_state: GridState
    grid_out: GridOut | None
    _hz_seen: float | None
    meter_poll_s: float | None
    var_written: float | None

    def _init_grid(self) -> None:
        self.grid = self.s.grid
        self.grid_state = GridState()
        self.grid_out = None
        self._hz_seen = None
        self._gaps: deque[float] = deque(maxlen=9)
        self.meter_poll_s = None
        self.var_written: float | None = None
        # Native functions written at the last start: until then the controller runs them
        # (an inverter whose models appear later keeps the controller-side path until a start).
        self._grid_written: set[str] = set()

    # -- where each function runs ----------------------------------------------------------
    def grid_native(self) -> frozenset[str]:
        """Functions the inverter runs: written to it (and confirmed) since the last start."""
        return frozenset(n for n in self._can_native() if n in self._grid_written)

    def _can_native(self) -> frozenset[str]:
        """The family can, the inverter serves the model, and it holds the curve."""
        return frozenset(
            n
            for n in self.p.native_grid
            if self.t.get(self.s.inverter, *ENA_POINT[n]) is not None
            and self.p.grid_capacity_problem(self.grid, n) is None
        )

    def grid_controller_side(self) -> GridSettings:
        """The settings with the natively-run functions switched off."""
        native = self.grid_native()
        g = self.grid
        for n in native:
            g = replace(g, **{n: replace(getattr(g, n), enabled=False)})
        return g

    def grid_runs_here(self) -> bool:
        return bool(self.grid_controller_side().enabled())

    def _native_grid_stages(self) -> list[Stage]:
        """Write (enabled or not) every function the inverter runs (at the enable sequence)."""
        native = self._can_native()
        return [self._grid_stage(n) for n in FUNCTIONS if n in native]

    def _grid_stage(self, name: str) -> Stage:
        """Function `name` of the settings in force, written to the inverter; until every
        write of it is confirmed the controller does not count it as run there."""

        def plan() -> Plan:
            self._grid_written.discard(name)
            return self.p.write_grid(self.grid, name)

        return Stage(f"grid {name}", plan, after=lambda: self._grid_written.add(name))

    # -- the control tick ------------------------------------------------------------------
    def grid_stage(self, want: Want, site: SiteView) -> Want:
        """The mode's `want` after the controller-side grid functions (stored for the state)."""
        self._track_meter_poll()
        g = self.grid_controller_side()
        if not g.enabled():
            self.grid_out = None
            return want
        self.grid_out = apply_grid(want, site, g, self.grid_state, self.s.control_tick_s)
        self.grid_state = self.grid_out.state
        return self.grid_out.want

    def _var_wanted(self) -> float | None:
        """Q the controller-side functions want written, None when none runs here."""
        if not self.p.supports_var or self.grid_out is None:
            return None
        if "volt_var" not in self.grid_out.doing and "pf" not in self.grid_out.doing:
            return None
        return self.grid_out.var

    def grid_var_due(self) -> bool:
        want = self._var_wanted()
        if want is None:
            return False
        return self.var_written is None or abs(want - self.var_written) > 0.005 * self._var_ref()

    def _var_ref(self) -> float:
        return max(self.limits.charge_w, self.limits.discharge_w, 1000.0)

    def _grid_var_stage(self) -> Stage:
        """With the setpoint: the controller-side Q, when due (a failure trips like the power)."""
        wanted: list[float] = []

        def plan() -> Plan:
            want = self._var_wanted()
            if want is None or not self.grid_var_due():
                return []
            wanted.append(want)
            return self.p.write_var(want)

        def written() -> None:
            if wanted:
                self.var_written = wanted[0]

        return Stage("var", plan, after=written)

    def grid_settle(self, applied_w: float, pv_w: float | None) -> None:
        self.grid_state = self.grid_state.settle(applied_w, pv_w)

    def _track_meter_poll(self) -> None:
        """The meter's poll period, from its adapter's poll times (`{meter}/ts`); values are
        published on change, so their arrival says nothing about the poll period."""
        if self.s.meter is None:
            return
        ts = self.t.number(self.s.meter, "", "ts")
        if ts is None or ts == self._hz_seen:
            return
        if self._hz_seen is not None and ts > self._hz_seen:
            self._gaps.append(ts - self._hz_seen)
            self.meter_poll_s = statistics.median(self._gaps)  # one late poll does not count
        self._hz_seen = ts

    # -- state and command -----------------------------------------------------------------
    def grid_report(self) -> dict[str, Any]:
        poll = self.meter_poll_s if self.meter_poll_s is not None else self.s.control_tick_s
        out = report(self.grid, self.grid_out, self.grid_native(), poll, self.s.control_tick_s)
        out["differs"] = self.p.grid_differences(self.grid)
        return out

    def _cmd_grid(self, body: dict[str, Any]) -> Answer:
        self._fields("grid", body, {"function", "params"})
        name, params = body.get("function"), body.get("params", {})
        if not isinstance(name, str):
            raise Refused("invalid_payload", f"function: must be one of {', '.join(FUNCTIONS)}")
        if not isinstance(params, dict):
            raise Refused("invalid_payload", "params: expected an object")
        new = self.grid.with_function(name, params)
        problem = self.p.grid_capacity_problem(new, name)
        served = self.t.get(self.s.inverter, *ENA_POINT.get(name, ("", ""))) is not None
        if problem and name in self.p.native_grid and served:
            raise Refused("out_of_range", problem)
        old, self.grid = self.grid, new
        if name not in self.grid_native():
            return self._grid_applied(name, params)
        failed: list[Exception] = []

        def written(errors: list[Exception]) -> None:
            if errors:  # put the function back as it was (best effort, bounded)
                failed.extend(errors)
                self.grid = old
                self._run_grid(name, "grid restore", self._restore_done(name))

        program = self._run_grid(name, "grid write", written)

        def then() -> Answer:
            if failed:
                reason = f"{name}: not written to the inverter: {failed[0]}"
                return self._after(self.runner.running(GRID), lambda: self._grid_refused(reason))
            if not program.done:  # the reply cannot wait longer: refused, so put it back
                self.runner.cancel(GRID)
                self.grid = old
                self._run_grid(name, "grid restore", self._restore_done(name))
                return self._grid_refused(
                    f"{name}: the inverter did not confirm the curve within the reply time; "
                    "the previous settings are being written back"
                )
            return self._grid_applied(name, params)

        return self._after(program, then)

    def _run_grid(self, name: str, what: str, done: Any) -> Program:
        return self.runner.run(GRID, Program(what, [self._grid_stage(name)], on_done=done))

    def _restore_done(self, name: str) -> Any:
        def done(errors: list[Exception]) -> None:
            if errors:
                self._emit({"kind": "grid", "function": name, "error": "restore failed"})

        return done

    @staticmethod
    def _grid_refused(reason: str) -> Answer:
        raise Refused("out_of_range", reason)

    def _grid_applied(self, name: str, params: dict[str, Any]) -> Answer:
        self.grid_state = GridState()
        self._emit({"kind": "grid", "function": name, "params": params})
        self._changed()
        return {**self._reply(), "grid": self.grid_report()}
