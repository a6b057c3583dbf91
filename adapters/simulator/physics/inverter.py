"""Battery inverter: follows its setpoint within rating and battery limits, with a ramp.

What a setpoint register means, when the inverter is on and how it shows its power belong to
its family (`physics/families/<family>.py`, one module per family registered in
`edge.families`); this module is what every family shares: limits, ramp, revert timers in
clock time, energy counting. Positive = discharge = export (topics.md "Power signs").
"""

from __future__ import annotations

from adapters.simulator.config import SimDeviceConfig
from adapters.simulator.physics.battery import BatteryPhysics
from adapters.simulator.physics.common import EnergyCounter, set_common
from adapters.simulator.physics.families import physics_class
from adapters.simulator.physics.families.rhombus_res125 import RES125_FAULT_POINTS
from adapters.simulator.physics.grid import Grid
from adapters.simulator.registers import Image, SunSpecImage
from edge.families import families

INVERTER_MODELS = {f.sim_profile: f.models for f in families().values() if f.models}


class InverterPhysics:
    """Follows the setpoint within rating and battery limits, with a ramp."""

    def __init__(
        self,
        cfg: SimDeviceConfig,
        img: Image,
        battery: BatteryPhysics | None,
        time_scale: float = 1.0,
    ) -> None:
        self.cfg = cfg
        self.img = img
        self.battery = battery
        # Revert timers guard the link to the controller, which lives in real time: they
        # count clock seconds (simulated / time_scale), so a lease refreshed on time by a
        # real-time controller does not lapse because energy runs fast.
        self.timer_rate = 1.0 / time_scale
        if battery is not None:
            battery.inverters.append(self)
        self.profile = cfg.profile
        self.power_w = 0.0
        self.base_w = 0.0  # the ramped setpoint, before the inverter's own grid support
        self.target_w = 0.0
        self.fault_forced: dict[str, int] = {}
        self.energy = EnergyCounter()
        self.grid = Grid()  # replaced by the site's grid (SiteSimulator); V and Hz it sees
        self.var = 0.0  # reactive power delivered (VAr, + injected)
        self.family = physics_class(cfg.profile)(self)
        if isinstance(img, SunSpecImage):
            set_common(img, cfg, f"sim-inverter-{cfg.profile}")
        self.family.init_registers()
        self.publish()

    # -- inputs --------------------------------------------------------------------------
    def on_write(self, points: list[tuple[int | str, str]]) -> None:
        self.family.on_write({n for _, n in points})

    def faulted(self) -> bool:
        return self.family.faulted()

    def is_on(self) -> bool:
        return self.family.is_on()

    def wmax(self) -> float:
        v = self.family.wmax_setting()
        return min(v, self.cfg.rating_w) if v is not None else self.cfg.rating_w

    def requested_w(self, wmax: float | None = None) -> float:
        """The setpoint the registers ask for now (W, positive discharge), before limits."""
        return self.family.requested_w(self.wmax() if wmax is None else wmax)

    def limits_w(self, wmax: float | None = None) -> tuple[float, float]:
        """(max charge W, max discharge W) now: rating and the battery's limits."""
        r = self.wmax() if wmax is None else wmax
        if self.battery is None:
            return r, r
        bc, bd = self.battery.limits_w()
        return min(r, bc), min(r, bd)

    # -- time ----------------------------------------------------------------------------
    def step(self, dt: float) -> None:
        """Advance `dt` simulated seconds (registers change at the next `publish`)."""
        self._tick_timers(dt * self.timer_rate)
        self.family.tick(dt)
        energised = self.is_on() and (self.battery is None or self.battery.connected)
        if not energised:
            self.target_w = self.base_w = self.var = 0.0
            self.power_w = 0.0  # contactor open or inverter off: no ramp down
        else:
            wmax = self.wmax()
            cha, dis = self.limits_w(wmax)
            self.target_w = max(-cha, min(dis, self.requested_w(wmax)))
            # Limits bind at once (a BMS does not wait for a ramp); setpoint changes ramp.
            self.base_w = max(-cha, min(dis, self.base_w))
            delta = self.target_w - self.base_w
            maxstep = self.cfg.ramp_w_per_s * dt
            self.base_w += max(-maxstep, min(maxstep, delta))
            # Grid support (droop, volt-watt) responds at its own speed, not at the ramp.
            grid = self.family.grid_delta(self.base_w, wmax, dt)
            self.power_w = max(-cha, min(dis, self.base_w + grid))
            self.var = max(-wmax, min(wmax, self.family.reactive(self.power_w, wmax, dt)))
        if self.battery is not None:
            self.battery.power_w = self.power_w
        self.energy.add(self.power_w, dt)

    def trip(self) -> None:
        """Stop at once (contactor opened, fault): no ramp down."""
        self.power_w = self.base_w = self.var = 0.0
        self.target_w = 0.0
        if self.battery is not None:
            self.battery.power_w = 0.0
        self.publish()
        if self.battery is not None:
            self.battery.publish()

    def _tick_timers(self, dt: float) -> None:
        for timer, expire in self.family.timers():
            if timer.left is None:
                continue
            timer.left -= dt
            if timer.left <= 0:
                timer.left = None
                expire()

    def publish(self) -> None:
        """Show the physics state in the registers."""
        self.family.publish(self.power_w)


__all__ = ["INVERTER_MODELS", "RES125_FAULT_POINTS", "InverterPhysics"]
