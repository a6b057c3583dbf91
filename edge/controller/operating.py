"""Operating modes in the controller: selection (command or schedule), the control tick, the
meter fallback, and what the state topic says about them (`mode`, `why`).

Every control tick (`control_tick_s`) the active mode gets a SiteView of the latest telemetry
and returns the power it wants; that becomes the request, which the setpoint pipeline bounds
before anything is written (setpoint.py), so no mode can bypass it. `charge`, `discharge` and
`hold` select the `manual` mode. A meter-based mode whose meter is offline, stale or frozen
(meter_watch.py) holds, with `mode.source = "fallback"` and the reason in `why`, and resumes by
itself once the meter is back.
"""

from __future__ import annotations

from typing import Any

from edge.controller.context import Answer, ControllerContext
from edge.controller.errors import Refused
from edge.controller.machine import St
from edge.controller.meter_watch import MeterWatch
from edge.controller.modes.base import Mode, SiteView, Want
from edge.controller.modes.registry import load_mode, mode_class, params_schema
from edge.controller.runner import Program
from edge.controller.schedule import Schedule, parse_schedule
from edge.controller.setpoint import limit_value

# States in which the active mode sets the request (not soc_recovery: recovery owns it).
RUNS_IN = frozenset({St.HOLDING, St.CHARGING, St.DISCHARGING})
RESUME_SCHEDULE = "schedule"  # cmd/mode {"mode": "schedule"}: hand control back to it
EVENT_FOR_SIGN = {
    1: ("discharge", St.DISCHARGING),
    -1: ("charge", St.CHARGING),
    0: ("hold", St.HOLDING),
}


class Operating(ControllerContext):
    mode: Mode
    mode_source: str  # "command" | "schedule"
    mode_since: float
    why: str
    schedule: Schedule | None
    _schedule_on: bool
    _fallback: str | None
    meter_watch: MeterWatch

    def _init_modes(self) -> None:
        self.mode = load_mode("manual", {"power_w": 0.0})
        self.mode_source = "command"
        self.mode_since = self.wall()
        self.why = "manual: hold as commanded; bound by: none"
        self.schedule = self.s.schedule
        self._schedule_on = self.schedule is not None
        self._fallback = None
        self.meter_watch = MeterWatch(self.clock, self.s.meter_frozen_s)

    # -- what the state topic says ---------------------------------------------------------
    def mode_state(self) -> dict[str, Any]:
        schema = params_schema(type(self.mode))
        return {
            "name": self.mode.name,
            "params": schema.dump(self.mode.params),
            "since": round(self.mode_since, 3),
            "source": "fallback" if self._fallback else self.mode_source,
        }

    def site_view(self) -> SiteView:
        s, t = self.s, self.t
        problem = self._meter_problem()
        grid = None if s.meter is None else t.number(s.meter, "203", "W")
        battery = self._inverter_w()
        pv = None
        if s.pv:
            pv = t.number(s.pv, "701", "W")
            pv = t.number(s.pv, "103", "W") if pv is None else pv
        return SiteView(
            now=self.wall(),
            soc=self.p.soc(),
            battery_w=battery,
            grid_w=None if problem else grid,
            pv_w=pv,
            meter_fresh=problem is None,
            charge_limit_w=self.limits.charge_w,
            discharge_limit_w=self.limits.discharge_w,
            capacity_wh=t.number(s.battery, self.p.battery_model, "WHRtg"),
            setpoint_w=self.applied_w,
            voltage_v=None if problem else t.number(s.meter, "203", "PhVphA") if s.meter else None,
            freq_hz=None if problem else t.number(s.meter, "203", "Hz") if s.meter else None,
        )

    def _inverter_w(self) -> float | None:
        """The battery's AC power as the inverter measures it (701/W, else 103/W)."""
        w = self.t.number(self.s.inverter, "701", "W")
        return self.t.number(self.s.inverter, "103", "W") if w is None else w

    def _meter_problem(self) -> str | None:
        """Why the meter cannot be acted on now, or None when its data is fresh."""
        s, t = self.s, self.t
        if s.meter is None:
            return "no meter configured"
        if t.status(s.meter) == "offline":
            return f"meter {s.meter} offline"
        w = t.sample(s.meter, "203", "W")
        if w is None or t.number(s.meter, "203", "W") is None:
            return f"no reading from meter {s.meter}"
        ts = t.number(s.meter, "", "ts")  # the adapter's last good poll (wall clock)
        age = self.wall() - ts if ts is not None else self.clock() - w.at
        if age > s.meter_stale_s:
            return f"meter {s.meter} data {age:.1f} s old (> meter_stale_s {s.meter_stale_s:g} s)"
        frozen = self.meter_watch.frozen()
        return None if frozen is None else frozen.describe(s.meter)

    def _watch_meter(self) -> None:
        """Every tick: show the frozen-meter watch the meter's W, its last poll, the inverter's
        measured W and the larger limit in force (meter_watch.py)."""
        s, t = self.s, self.t
        if s.meter is None:
            return
        w = t.sample(s.meter, "203", "W")
        ts = t.number(s.meter, "", "ts")
        self.meter_watch.observe(
            t.number(s.meter, "203", "W"),
            ts if ts is not None else None if w is None else w.at,
            self._inverter_w(),
            max(self.limits.charge_w, self.limits.discharge_w),
        )

    # -- selection ---------------------------------------------------------------------------
    def _select(self, mode: Mode, source: str, reason: str) -> None:
        changed = (
            mode.name != self.mode.name
            or mode.params != self.mode.params
            or source != self.mode_source
        )
        self.mode, self.mode_source = mode, source
        if changed:
            self.mode_since = self.wall()
            self._emit({"kind": "mode", **self.mode_state(), "reason": reason})
            self._changed()

    def _select_manual(
        self, signed_w: float, source: str = "command", reason: str | None = None
    ) -> None:
        """An operator's charge/discharge/hold (or a service's fallback hold, `source`
        "fallback" with its reason): the manual mode, the schedule suspended."""
        self._schedule_on = False
        self._fallback = None
        self._select(load_mode("manual", {"power_w": signed_w}), source, reason or source)
        said = f"{source}: {reason}" if reason else self.mode.step(self.site_view()).why
        self.why = f"manual: {said}; bound by: " + self._bound_label(
            self._through_pipeline(signed_w, ramp=False).bound_by
        )

    def _cmd_mode(self, body: dict[str, Any]) -> Answer:
        self._fields("mode", body, {"mode", "params"})
        if "mode" not in body:
            raise Refused("invalid_payload", "mode: missing (required by mode)")
        name, params = body["mode"], body.get("params")
        if name == RESUME_SCHEDULE:
            if self.schedule is None:
                raise Refused("out_of_range", "mode: 'schedule' selected but no schedule is set")
            if params:
                raise Refused("invalid_payload", "params: the schedule takes no params")
        else:
            mode = load_mode(name, params)  # Refused names params.<key>
        self._refuse_in_fault("mode")
        if self.state not in RUNS_IN:
            raise self._not_allowed("mode", "hold")
        if name == RESUME_SCHEDULE:
            self._schedule_on = True
            self._follow_schedule()
        elif mode.name == "manual":
            w = float(mode.params["power_w"])
            answer = (
                self._discharge(w, None)
                if w > 0
                else self._charge(-w, None)
                if w < 0
                else self._hold()
            )
            return self._map(answer, lambda r: {**r, "mode": self.mode_state()})
        else:
            self._schedule_on = False
            self._select(mode, "command", "command mode")
        return self._after(
            self._control_now(), lambda: {**self._reply(), "mode": self.mode_state()}
        )

    def _cmd_limit(self, body: dict[str, Any]) -> Answer:
        """The operator run-time limits: one more term of the min(), so only ever lower."""
        self._fields("limit", body, {"charge_w", "discharge_w"})
        new = (limit_value(body, "charge_w"), limit_value(body, "discharge_w"))
        self.operator_limit = new
        head = self.why.rsplit("; bound by: ", 1)[0]
        self._update_limits()
        work = self._setpoint_work if self._running(self._setpoint_work) else None
        manual = self.mode.name == "manual" and self.mode_source in ("command", "fallback")
        if self.state in RUNS_IN and manual:
            bound = self._through_pipeline(self.requested_w, ramp=False).bound_by
            self.why = f"{head}; bound by: {self._bound_label(bound)}"
            self._changed()
        elif self.state in RUNS_IN:
            work = self._control_now() or work
        return self._after(
            work,
            lambda: {
                **self._reply(),
                "limits": self.limits.as_dict(),
                "operator_limit": {"charge_w": new[0], "discharge_w": new[1]},
            },
        )

    def _cmd_schedule(self, body: dict[str, Any]) -> Answer:
        self._fields("schedule", body, {"schedule"})
        if "schedule" not in body:
            raise Refused("invalid_payload", "schedule: missing (an object, or null to clear)")
        new = None if body["schedule"] is None else parse_schedule(body["schedule"], self.s.tz)
        self.schedule = new
        self._schedule_on = new is not None
        if new is None and self.mode_source == "schedule":
            self.requested_w = 0.0
            self._select(load_mode("manual", {"power_w": 0.0}), "command", "schedule cleared")
        self._emit({"kind": "schedule", "schedule": None if new is None else new.raw})
        self._changed()
        work = None
        if self.state in RUNS_IN:
            self._follow_schedule()
            work = self._control_now()
        return self._after(
            work,
            lambda: {
                **self._reply(),
                "schedule": None if new is None else new.raw,
                "mode": self.mode_state(),
            },
        )

    def _follow_schedule(self) -> None:
        if not self._schedule_on or self.schedule is None:
            return
        entry = self.schedule.active(self.wall())
        if entry is None:
            return
        if (entry.mode, entry.params) != (self.mode.name, self.mode.params) or (
            self.mode_source != "schedule"
        ):
            mode = mode_class(entry.mode)(entry.params)
            self._select(mode, "schedule", f"schedule window {entry.window}")

    # -- the control tick --------------------------------------------------------------------
    def _control(self) -> None:
        """From tick(): follow the schedule, and run the mode every control_tick_s."""
        self._watch_meter()
        if self._every("control", self.s.control_tick_s):
            self._follow_schedule()
            self._control_step()

    def _control_now(self) -> Program | None:
        """A command's control step; the setpoint it starts is written before the reply."""
        self._control_step()
        if self.state in RUNS_IN and self._next_step() != self.applied_w:
            return self._spawn_setpoint()
        return None

    def _control_step(self) -> None:
        if self.state not in RUNS_IN:
            owner = "SoC recovery sets the power" if self.state == St.SOC_RECOVERY else "idle"
            why = f"{self.mode.name}: not running in state {self.state} ({owner}); bound by: none"
            if why != self.why:
                self.why = why
                self._changed()
            return
        manual = self.mode.name == "manual" and self.mode_source in ("command", "fallback")
        if manual and not self.grid_runs_here():
            return  # the operator's command set the request and the state
        site = self.site_view()
        fallback = None
        if self.mode.needs_meter and not site.meter_fresh:
            fallback = self._meter_problem()
            want = Want(0.0, f"{fallback}, fall back to hold")
        else:
            want = self.mode.step(site)
        if (fallback is None) != (self._fallback is None):  # an event as it starts and ends,
            self._fallback = fallback  # not one per tick as a stale meter's age grows
            self._emit({"kind": "mode", **self.mode_state(), "reason": fallback or "meter back"})
        self._fallback = fallback
        mode_want = want
        want = self.grid_stage(want, site)  # grid support overrides the mode where they conflict
        goal = self._through_pipeline(want.power_w, ramp=False).power_w
        applied = self._through_pipeline(want.power_w)
        bound = self._bound_label(applied.bound_by)
        self.grid_settle(applied.power_w, site.pv_w)
        set_by = self.grid_out.set_by if self.grid_out is not None else None
        why = (
            f"{want.why}; bound by: {bound}"
            if set_by
            else f"{self.mode.name}: {mode_want.why}; bound by: {bound}"
        )
        self.requested_w = want.power_w
        event, target = EVENT_FOR_SIGN[(goal > 0) - (goal < 0)]
        if self.state != target:
            self._goto(event, f"mode {self.mode.name}: {want.why}")
        if why != self.why:
            self.why = why
            self._changed()
