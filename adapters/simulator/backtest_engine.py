"""The backtest engine: a mode and the setpoint pipeline against the simulator's physics.

Every simulated step does what the controller does every tick: build a `SiteView` from the
site's readings, ask the mode (`edge.controller.modes`), pass its wish through the pipeline
(`edge.controller.pipeline.apply`), and command the result through the site's own controller
profile, whatever the inverter family (backtest_profile.py: the profile's plans written into
the simulator, its telemetry read from it). The limits in force come from the controller's own
`compute_limits` over what the profile reads. The physics then advances one step without
rendering registers, which is what makes a day at 1 s steps take seconds. The load and PV
come from CSV series.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.simulator.backtest_grid import GridSupport
from adapters.simulator.backtest_profile import BacktestError, ProfileDriver
from adapters.simulator.config import SimDeviceConfig, SimulatorConfig
from adapters.simulator.physics import BatteryPhysics, InverterPhysics, MeterPhysics, PvPhysics
from adapters.simulator.physics.profiles import STC_W_M2
from adapters.simulator.series import Series
from adapters.simulator.site import SiteSimulator
from edge.controller.config import ControllerSettings
from edge.controller.limits import Limits
from edge.controller.modes.base import Mode, ParamsSchema, SiteView, Want
from edge.controller.modes.registry import mode_class
from edge.controller.pipeline import BOUNDS, PipelineSettings, apply
from edge.controller.schedule import Schedule
from edge.families import by_sim_profile

METER, PV = "bt-meter", "bt-pv"
DEMAND_S = 900.0  # demand interval of the peak_demand KPIs


__all__ = ["Backtest", "BacktestError", "ScheduledMode", "Trace", "kpis"]


@dataclass
class Trace:
    """What happened, one sample per step (end of the step), powers in W."""

    step_s: float
    t: list[float] = field(default_factory=list)  # seconds from the start
    load: list[float] = field(default_factory=list)
    pv: list[float] = field(default_factory=list)
    grid: list[float] = field(default_factory=list)
    battery: list[float] = field(default_factory=list)
    soc: list[float] = field(default_factory=list)
    bound_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(BOUNDS, 0.0))
    mode_s: dict[str, float] = field(default_factory=dict)  # seconds per mode (per window)
    grid_s: dict[str, float] | None = None  # seconds each grid function set the power
    grid_wh: float = 0.0  # |grid-support power - the mode's| integrated while one set it
    grid_response_s: list[float] = field(default_factory=list)  # per frequency excursion
    write_failures: int = 0  # writes the controller would not have counted as confirmed
    first_write_failure: str | None = None

    def book(self, failed: list[str]) -> None:
        if failed:
            self.write_failures += len(failed)
            if self.first_write_failure is None:
                self.first_write_failure = failed[0]


class ScheduledMode(Mode):
    """The site's `[controller.schedule]` as one mode: the window in force at `site.now`
    picks the mode, as the controller's schedule does (checked once a simulated minute, the
    schedule's resolution). `label` names the window and mode in force."""

    name = "schedule"
    params_schema = ParamsSchema

    def __init__(self, schedule: Schedule) -> None:
        super().__init__({})
        self.schedule = schedule
        self.current: Mode | None = None
        self.label = "none"
        self._minute: int | None = None

    def step(self, site: SiteView) -> Want:
        minute = int(site.now // 60)
        if minute != self._minute:
            self._minute = minute
            entry = self.schedule.active(site.now)
            if entry is None:
                self.current, self.label = None, "none"
            elif self.current is None or (entry.mode, entry.params) != (
                self.current.name,
                self.current.params,
            ):
                self.current = mode_class(entry.mode)(entry.params)
            if entry is not None:
                self.label = f"{entry.window}:{entry.mode}"
        if self.current is None:
            return Want(0.0, "no schedule window, hold")
        return self.current.step(site)


def _pick(sim_cfg: SimulatorConfig, kind: str, name: str) -> SimDeviceConfig:
    """The `[simulator]` device the controller names, else the first of its kind."""
    of_kind = [d for d in sim_cfg.devices if d.kind == kind]
    for d in of_kind:
        if d.name == name:
            return d
    if not of_kind:
        raise BacktestError(f"simulator.devices: the backtest needs a {kind} device")
    return of_kind[0]


def _check_family(settings: ControllerSettings, inv: SimDeviceConfig) -> None:
    """The controller's profile must drive the family of the simulated inverter."""
    fam = by_sim_profile(inv.profile)
    if settings.profile != fam.name:
        raise BacktestError(
            f"controller.profile is {settings.profile!r} (sunspec_704 when unset), but"
            f" simulator.devices.{inv.name}.profile is {inv.profile!r}, an inverter of family"
            f" {fam.name!r}: set [controller] profile = {fam.name!r}, or give the simulated"
            " inverter the profile of the controller's family"
        )


class Backtest:
    """One run: site physics from the site file, load and PV from series, one mode."""

    def __init__(
        self,
        sim_cfg: SimulatorConfig,
        settings: ControllerSettings,
        mode: Mode,
        load: Series,
        pv: Series | None = None,
        step_s: float = 1.0,
        grid: tuple[Series, Series] | None = None,
    ) -> None:
        self.grid = grid  # (V, Hz) at the point of connection; grid support runs with it
        bat = dataclasses.replace(
            _pick(sim_cfg, "battery", settings.battery), port=0, connect_delay_s=0.0
        )
        inv = dataclasses.replace(_pick(sim_cfg, "inverter", settings.inverter), port=0)
        _check_family(settings, inv)
        inv = dataclasses.replace(inv, battery=bat.name)
        # The profile addresses the devices by the names it is configured with.
        settings = dataclasses.replace(settings, battery=bat.name, inverter=inv.name)
        devices = [bat, inv, SimDeviceConfig(name=METER, kind="meter", load_w=0.0)]
        if pv is not None:
            rating = max(max(pv.values), 1.0)
            devices.append(SimDeviceConfig(name=PV, kind="pv", rating_w=rating))
        self.sim = SiteSimulator(SimulatorConfig(devices=devices, seed=sim_cfg.seed))
        self.mode = mode
        self.settings = settings
        self.pipeline = PipelineSettings.of(settings)
        self.step_s = step_s
        self.t0 = self.now = load.start  # `now`: the controller's (simulated) clock
        self.battery = self._physics(bat.name, BatteryPhysics)
        self.inverter = self._physics(inv.name, InverterPhysics)
        self.meter = self._physics(METER, MeterPhysics)
        self.pv = self._physics(PV, PvPhysics) if pv is not None else None
        # The site's load and sun are the series, read at simulated time after the start.
        self.meter.load.base = _shifted(load.at, self.t0)
        if pv is not None and self.pv is not None:
            scale = STC_W_M2 / self.pv.cfg.rating_w
            at = pv.at
            t0 = self.t0
            self.pv.irradiance.sky = lambda tt: at(t0 + tt) * scale
            self.pv.power_w = self.pv.output()
        self.meter.refresh()
        self.inv_name = inv.name
        # Energise with the profile's own start sequence; it then takes the setpoints.
        self.driver = ProfileDriver(self.sim, settings, lambda: self.now)
        self.driver.energise()
        if not self.inverter.is_on():  # a plan the simulated inverter does not follow
            raise BacktestError(
                f"simulator.devices.{inv.name}: the simulated {inv.profile!r} inverter is not"
                f" on after the start sequence of profile {self.driver.profile.name!r}; the"
                " simulator does not model this [controller] configuration"
                f" (inverter_command_mode {settings.inverter_command_mode!r})"
            )
        self._limits: dict[tuple[float, float], Limits] = {}

    def _physics(self, name: str, cls: type[Any]) -> Any:
        ph = self.sim.device(name).physics
        assert isinstance(ph, cls)
        return ph

    def view(self, now: float, setpoint_w: float) -> SiteView:
        """What the controller would see now: SoC, powers, meter, the limits in force."""
        bat = self.battery
        key = bat.limits_w()
        limits = self._limits.get(key)
        if limits is None:  # the limits only move in the taper zones: remember them
            if len(self._limits) > 100_000:
                self._limits.clear()
            limits = self._limits[key] = self.driver.limits()
        return SiteView(
            now=now,
            soc=bat.soc,
            battery_w=self.inverter.power_w,
            grid_w=self.meter.grid_w,
            pv_w=self.pv.power_w if self.pv is not None else None,
            meter_fresh=True,
            charge_limit_w=limits.charge_w,
            discharge_limit_w=limits.discharge_w,
            capacity_wh=bat.cfg.capacity_wh,
            setpoint_w=setpoint_w,
            voltage_v=self.grid[0].at(now) if self.grid else None,
            freq_hz=self.grid[1].at(now) if self.grid else None,
        )

    def run(self, seconds: float) -> Trace:
        """Step through `seconds` of simulated time; returns the trace."""
        trace = Trace(self.step_s)
        dt, steps = self.step_s, round(seconds / self.step_s)
        bound_s, mode_s = trace.bound_s, trace.mode_s
        setpoint = written = 0.0
        sim, mode, pipeline, driver = self.sim, self.mode, self.pipeline, self.driver
        trace.t.append(0.0)
        self._sample(trace)
        support = GridSupport(self.settings, trace) if self.grid else None
        parts = driver.split(dt)  # the lease and the polls fall between control ticks
        part = dt / parts
        for k in range(steps):
            t = self.now = self.t0 + k * dt
            view = self.view(t, setpoint)
            want = mode.step(view)
            if support is not None:
                want = support.stage(want, view, dt, self.inverter.power_w)
            applied = apply(want.power_w, view, pipeline, setpoint, dt)
            if support is not None:
                support.settle(applied.power_w, view.pv_w)
            setpoint = applied.power_w
            bound_s[applied.bound_by] = bound_s.get(applied.bound_by, 0.0) + dt
            label = getattr(mode, "label", mode.name)
            mode_s[label] = mode_s.get(label, 0.0) + dt
            if setpoint != written:  # the controller writes a changed setpoint
                trace.book(driver.write_power(setpoint))
                written = setpoint
            for j in range(1, parts + 1):
                sim.advance(part, publish=False)
                self.now = t + j * part
                if self.now >= driver.due - 1e-9:
                    trace.book(driver.housekeeping(setpoint))
            trace.t.append((k + 1) * dt)
            self._sample(trace)
        return trace

    def _sample(self, trace: Trace) -> None:
        """Record the site as it is now (after a step)."""
        trace.load.append(self.meter.load_w)
        trace.pv.append(self.pv.power_w if self.pv is not None else 0.0)
        trace.grid.append(self.meter.grid_w)
        trace.battery.append(self.inverter.power_w)
        trace.soc.append(self.battery.soc)


def _shifted(at: Callable[[float], float], t0: float) -> Callable[[float], float]:
    return lambda tt: at(t0 + tt)


def kpis(trace: Trace, capacity_wh: float) -> dict[str, Any]:
    """The figures an engineer compares runs by. Energy in Wh, power in W, SoC in %.

    Samples 1.. are the ends of the steps (sample 0 is the start). Self-consumption is the
    share of PV energy used on site (load or battery): 1 - min(export, PV) / PV. Peak demand
    is the highest 15-minute mean of the grid exchange (import positive). `write_failures`
    counts the writes the controller would not have counted as confirmed (it trips on one).
    """
    h = trace.step_s / 3600.0
    load, pv, grid, bat = trace.load[1:], trace.pv[1:], trace.grid[1:], trace.battery[1:]
    net = [a - b for a, b in zip(load, pv, strict=True)]
    pv_wh = sum(pv) * h

    def imp(xs: list[float]) -> float:
        return sum(x for x in xs if x > 0) * h

    def exp(xs: list[float]) -> float:
        return -sum(x for x in xs if x < 0) * h

    def self_use(export_wh: float) -> float | None:
        return None if pv_wh <= 0 else round(1.0 - min(export_wh, pv_wh) / pv_wh, 4)

    charged, discharged = exp(bat), imp(bat)
    return {
        "peak_import_before_w": round(max([0.0, *net]), 1),
        "peak_import_after_w": round(max([0.0, *grid]), 1),
        "peak_demand_15min_before_w": round(_peak_demand(net, trace.step_s), 1),
        "peak_demand_15min_after_w": round(_peak_demand(grid, trace.step_s), 1),
        "import_wh_before": round(imp(net), 1),
        "import_wh_after": round(imp(grid), 1),
        "export_wh_before": round(exp(net), 1),
        "export_wh_after": round(exp(grid), 1),
        "energy_charged_wh": round(charged, 1),
        "energy_discharged_wh": round(discharged, 1),
        "equivalent_cycles": round((charged + discharged) / 2.0 / capacity_wh, 4),
        "pv_wh": round(pv_wh, 1),
        "self_consumption_before": self_use(exp(net)),
        "self_consumption_after": self_use(exp(grid)),
        "soc_start": round(trace.soc[0], 3),
        "soc_end": round(trace.soc[-1], 3),
        "soc_min": round(min(trace.soc), 3),
        "soc_max": round(max(trace.soc), 3),
        "bound_s": {k: round(v, 3) for k, v in trace.bound_s.items()},
        "mode_s": {k: round(v, 3) for k, v in trace.mode_s.items()},
        **_grid_kpis(trace),
        "write_failures": trace.write_failures,
        **({"first_write_failure": trace.first_write_failure} if trace.write_failures else {}),
    }


def _peak_demand(xs: list[float], step_s: float, interval_s: float = DEMAND_S) -> float:
    """The highest mean import over fixed intervals from the start (how demand is billed);
    a last, partial interval counts over its own length."""
    n = max(1, round(interval_s / step_s))
    best = 0.0
    for i in range(0, len(xs), n):
        block = xs[i : i + n]
        best = max(best, sum(block) / len(block))
    return best


def _grid_kpis(trace: Trace) -> dict[str, Any]:
    """With `--grid`: seconds and energy of grid support, and the droop's response times."""
    if trace.grid_s is None:
        return {}
    rs = sorted(trace.grid_response_s)
    return {
        "grid_support_s": {k: round(v, 3) for k, v in trace.grid_s.items()},
        "grid_support_wh": round(trace.grid_wh, 1),
        "freq_events": len(rs),
        "freq_response_p50_s": rs[len(rs) // 2] if rs else None,
        "freq_response_max_s": rs[-1] if rs else None,
    }
