"""The grid-support stage: between the mode and the setpoint pipeline.

Order: smoothing (limits the point-of-connection ramp of what the mode wants), frequency-watt
(overrides: from the power held when the frequency left the deadband, plus the droop),
volt-watt (caps export). Reactive power: volt-var, else constant power factor. What comes out
still passes the SoC bounds and limits (edge.controller.pipeline), which apply last. `why`
names the function that set the power. Pure: the state is passed in and returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from edge.controller.grid import functions as fn
from edge.controller.grid.settings import GridSettings
from edge.controller.modes.base import SiteView, Want, kw


@dataclass(frozen=True)
class GridState:
    last_poc_w: float | None = None  # PV + battery at the point of connection, last tick
    droop_base_w: float | None = None  # power held when the frequency left the deadband

    def settle(self, applied_w: float, pv_w: float | None) -> GridState:
        """After the pipeline: remember where the point of connection really went."""
        if pv_w is None:
            return replace(self, last_poc_w=None)
        return replace(self, last_poc_w=pv_w + applied_w)


@dataclass(frozen=True)
class GridOut:
    want: Want  # the power for the pipeline and its reason
    var: float  # reactive power to hold (VAr, + injected); 0 when no Q function runs
    set_by: str | None  # the grid function that set the power, None: the mode did
    doing: dict[str, str] = field(default_factory=dict)  # function -> what it does now
    state: GridState = field(default_factory=GridState)


def rating_w(g: GridSettings, site: SiteView) -> float:
    return g.rating_w or max(site.discharge_limit_w, site.charge_limit_w, 0.0)


def apply_grid(
    want: Want, site: SiteView, g: GridSettings, state: GridState, dt_s: float
) -> GridOut:
    """What the enabled grid functions make of the mode's `want` at this tick."""
    w, why, by = want.power_w, want.why, None
    doing: dict[str, str] = {}
    rating = rating_w(g, site)
    last_poc, base = state.last_poc_w, state.droop_base_w

    sm = g.smoothing
    if sm.enabled:
        if site.pv_w is None:
            doing["smoothing"] = "idle: no PV reading"
        else:
            start = last_poc if last_poc is not None else site.pv_w + site.setpoint_w
            step = sm.ramp_pct_per_min / 100.0 * sm.pv_rating_w / 60.0 * max(0.0, dt_s)
            smoothed = fn.smooth_poc(site.pv_w, w, start, step)
            if abs(smoothed - w) > 0.5:
                w, by = smoothed, "smoothing"
                why = (
                    f"smoothing: point of connection held to {sm.ramp_pct_per_min:g} %/min of "
                    f"{kw(sm.pv_rating_w)} PV ({kw(site.pv_w + w)}), battery {kw(w)}"
                )
                doing["smoothing"] = f"limiting the ramp, battery {kw(w)}"
            else:
                doing["smoothing"] = "within the ramp limit"

    fw = g.freq_watt
    if fw.enabled:
        if site.freq_hz is None:
            doing["freq_watt"], base = "idle: no frequency reading", None
        else:
            d_pct = fn.droop_delta_pct(fw, site.freq_hz, g.nominal_hz)
            if d_pct == 0.0:
                doing["freq_watt"], base = f"{site.freq_hz:.3f} Hz within the deadband", None
            else:
                base = w if base is None else base
                w, by = base + d_pct / 100.0 * rating, "freq_watt"
                why = f"freq_watt: {site.freq_hz:.3f} Hz, droop {kw(w - base)} from {kw(base)}"
                doing["freq_watt"] = f"droop {d_pct:+.1f} % of {kw(rating)}"

    vw = g.volt_watt
    v_pct = None if site.voltage_v is None else site.voltage_v / g.nominal_v * 100.0
    if vw.enabled:
        if v_pct is None:
            doing["volt_watt"] = "idle: no voltage reading"
        else:
            cap = fn.volt_watt_cap_pct(vw.points, v_pct) / 100.0 * rating
            if w > cap:
                w, by = cap, "volt_watt"
                why = f"volt_watt: {v_pct:.1f} % V caps the power at {kw(cap)}"
                doing["volt_watt"] = f"capping at {kw(cap)}"
            else:
                doing["volt_watt"] = f"{v_pct:.1f} % V, cap {kw(cap)} not reached"

    var = 0.0
    vv = g.volt_var
    if vv.enabled and v_pct is not None:
        var = fn.volt_var_pct(vv.points, v_pct) / 100.0 * (vv.var_rating_var or rating)
        doing["volt_var"] = f"{v_pct:.1f} % V, Q {var / 1000:+.1f} kvar"
    elif vv.enabled:
        doing["volt_var"] = "idle: no voltage reading"
    if g.pf.enabled:
        if vv.enabled and v_pct is not None:
            doing["pf"] = "overridden by volt_var"
        else:
            var = fn.pf_var(g.pf.pf, g.pf.excitation, w)
            doing["pf"] = f"PF {g.pf.pf:g} {g.pf.excitation}-excited, Q {var / 1000:+.1f} kvar"
    return GridOut(Want(w, why), var, by, doing, GridState(last_poc, base))


def report(
    g: GridSettings, out: GridOut | None, native: frozenset[str], poll_s: float, tick_s: float
) -> dict[str, Any]:
    """The state topic's `grid` object: per function enabled, curve, doing, native or
    controller-side, and the response time (native: the inverter's; controller: meter poll
    plus control tick plus the write)."""
    funcs: dict[str, Any] = {}
    for name in ("volt_var", "volt_watt", "freq_watt", "pf", "smoothing"):
        f = getattr(g, name)
        params = {k: getattr(f, k) for k in f.__dataclass_fields__ if k != "enabled"}
        if "points" in params:
            params["points"] = [list(p) for p in params["points"]]
        is_native = name in native
        rsp = getattr(f, "response_s", None)
        funcs[name] = {
            "enabled": f.enabled,
            "params": params,
            "where": "inverter" if is_native else "controller",
            "response_s": rsp if is_native else round(poll_s + tick_s, 3),
            "doing": (out.doing.get(name) if out else None) or ("off" if not f.enabled else "idle"),
        }
    return {"nominal_v": g.nominal_v, "nominal_hz": g.nominal_hz, "functions": funcs}
