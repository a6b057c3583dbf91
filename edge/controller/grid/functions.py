"""The grid-support functions as pure arithmetic: curve in, value out. No state, no clock.

Units follow the SunSpec DER models: voltage in % of nominal (705/706 `V`), reactive power in %
of the var rating (705 `Var`, `DeptRef` VAR_MAX_PCT), active power in % of the rating (706 `W`),
droop `k` per unit (711 `KOf`/`KUf`), deadbands in Hz (711 `DbOf`/`DbUf`). Signs: P + =
discharge (export), Q + = injected (over-excited).
"""

from __future__ import annotations

import itertools
import math

from edge.controller.grid.settings import Curve, FreqWatt


def interp(curve: Curve, x: float) -> float:
    """Piecewise-linear through the points, flat beyond the first and last."""
    if x <= curve[0][0]:
        return curve[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(curve):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return curve[-1][1]


def volt_var_pct(curve: Curve, v_pct: float) -> float:
    """Q (% of var rating) the volt-var curve asks for at `v_pct` % of nominal voltage."""
    return interp(curve, v_pct)


def volt_watt_cap_pct(curve: Curve, v_pct: float) -> float:
    """Highest P (% of rating) the volt-watt curve allows at `v_pct`."""
    return interp(curve, v_pct)


def droop_delta_pct(fw: FreqWatt, hz: float, nominal_hz: float) -> float:
    """Change of P (% of rating) for frequency `hz`: 0 inside the deadband; below it the
    battery discharges more, above it charges more, by (|f - edge| / f_nom) / k."""
    if hz < nominal_hz - fw.db_under_hz:
        return (nominal_hz - fw.db_under_hz - hz) / nominal_hz / fw.k_under * 100.0
    if hz > nominal_hz + fw.db_over_hz:
        return -(hz - nominal_hz - fw.db_over_hz) / nominal_hz / fw.k_over * 100.0
    return 0.0


def pf_var(pf: float, excitation: str, p_w: float) -> float:
    """Q (VAr) that holds power factor `pf` at active power `p_w`."""
    if pf >= 1.0:
        return 0.0
    q = abs(p_w) * math.tan(math.acos(pf))
    return q if excitation == "over" else -q


def smooth_poc(pv_w: float, want_battery_w: float, last_poc_w: float, max_step_w: float) -> float:
    """Battery power that keeps the point of connection (PV + battery) within `max_step_w`
    of where it was, given PV now and what the mode wants."""
    wanted_poc = pv_w + want_battery_w
    poc = min(last_poc_w + max_step_w, max(last_poc_w - max_step_w, wanted_poc))
    return poc - pv_w
