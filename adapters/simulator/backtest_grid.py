"""Grid support in the backtest: the controller's grid stage over the recorded V and Hz,
with its energy and its response to each frequency excursion booked in the trace.

In a backtest every enabled function runs in the controller's stage (the backtest writes only
the profile's power setpoint, never a native curve), so the figures are those of the
controller-side path at the step size, whatever the inverter family.
"""

from __future__ import annotations

from typing import Any

from edge.controller.config import ControllerSettings
from edge.controller.grid import GridState, apply_grid
from edge.controller.modes.base import SiteView, Want


class GridSupport:
    def __init__(self, settings: ControllerSettings, trace: Any) -> None:
        self.g = settings.grid
        self.trace = trace
        trace.grid_s = {}
        self.state = GridState()
        self.t = 0.0
        self._event: tuple[float, float, float] | None = None  # (start, battery W, change W)

    def stage(self, want: Want, view: SiteView, dt: float, battery_w: float) -> Want:
        """The grid stage on the mode's `want`; books time, energy and response."""
        self._follow(battery_w)
        out = apply_grid(want, view, self.g, self.state, dt)
        self.state = out.state
        tr = self.trace
        if out.set_by is not None:
            tr.grid_s[out.set_by] = tr.grid_s.get(out.set_by, 0.0) + dt
            tr.grid_wh += abs(out.want.power_w - want.power_w) * dt / 3600.0
        droop = out.set_by == "freq_watt"
        if droop and self._event is None and out.state.droop_base_w is not None:
            self._event = (self.t, battery_w, out.want.power_w - battery_w)
        elif not droop:
            self._event = None  # back in the deadband (or another function took over)
        self.t += dt
        return out.want

    def settle(self, applied_w: float, pv_w: float | None) -> None:
        self.state = self.state.settle(applied_w, pv_w)

    def _follow(self, battery_w: float) -> None:
        """Book the response once the battery has made 90 % of the droop's change."""
        if self._event is None:
            return
        start, before, change = self._event
        if change == 0.0:
            return  # booked already: wait for the frequency to return
        if abs(battery_w - before) >= 0.9 * abs(change):
            self.trace.grid_response_s.append(self.t - start)
            self._event = (start, before, 0.0)
