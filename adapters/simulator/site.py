"""`SiteSimulator`: the public in-process API of the simulator (see README.md next to this file).

It builds every device from the `[simulator]` config, runs one Modbus TCP server per device
and steps the physics every `step_s` real seconds by `elapsed x time_scale` simulated seconds,
reading time from an injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from adapters.pointmap.reader import builtin_path, load_pointmap
from adapters.simulator.config import SimulatorConfig, SimulatorSchema
from adapters.simulator.device import InjectError, SimulatedDevice
from adapters.simulator.physics import (
    BATTERY_MODELS,
    INVERTER_MODELS,
    METER_MODELS,
    PV_MODELS,
    BatteryPhysics,
    InverterPhysics,
    MeterPhysics,
    PvPhysics,
)
from adapters.simulator.physics.families import physics_class
from adapters.simulator.physics.grid import Grid
from adapters.simulator.registers import PointMapImage, PointValue, SunSpecImage
from edge.families import by_sim_profile

log = logging.getLogger(__name__)

MAX_STEP_S = 1.0  # simulated seconds per physics sub-step (keeps ramps/timers accurate)
STEP_ORDER = ("inverter", "pv", "battery", "meter")  # the meter sums what the others did


class SiteSimulator:
    """Simulated battery, inverter(s) and meter(s) of one site."""

    def __init__(
        self,
        config: SimulatorConfig | dict[str, Any],
        site: str = "demo",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(config, dict):
            config = SimulatorSchema().load(config)
        assert isinstance(config, SimulatorConfig)
        self.config = config
        self.site = site
        self.clock = clock
        self.sim_time = 0.0
        self.devices: dict[str, SimulatedDevice] = {}
        self._task: asyncio.Task[None] | None = None
        self._build()
        self._stepping = sorted(self.devices.values(), key=lambda d: STEP_ORDER.index(d.cfg.kind))

    @classmethod
    def from_config(
        cls, site_config: Any, clock: Callable[[], float] = time.monotonic
    ) -> SiteSimulator:
        """From an `edge.config.SiteConfig` (its `simulator` section must be present)."""
        if site_config.simulator is None:
            raise ValueError(f"{site_config.path}: no [simulator] section")
        return cls(site_config.simulator, site=site_config.site, clock=clock)

    def _build(self) -> None:
        cfgs = self.config.devices
        batteries: dict[str, BatteryPhysics] = {}
        inverters: dict[str, InverterPhysics] = {}
        self.grid = Grid()  # one point of connection for the whole site
        host = self.config.host
        for c in (c for c in cfgs if c.kind == "battery"):
            img = SunSpecImage(BATTERY_MODELS)
            bp = BatteryPhysics(c, img)
            batteries[c.name] = bp
            self.devices[c.name] = SimulatedDevice(c, img, bp, host)
        for c in (c for c in cfgs if c.kind == "inverter"):
            bat = self._pick(c.battery, batteries)
            pmap = by_sim_profile(c.profile).pointmap
            if pmap is not None:
                pimg = PointMapImage(pmap, load_pointmap(builtin_path(pmap), pmap))
                ip = InverterPhysics(c, pimg, bat, self.config.time_scale)
                self.devices[c.name] = SimulatedDevice(c, pimg, ip, host)
            else:
                data = physics_class(c.profile).MODEL_DATA
                simg = SunSpecImage(INVERTER_MODELS[c.profile], model_data=data)
                ip = InverterPhysics(c, simg, bat, self.config.time_scale)
                self.devices[c.name] = SimulatedDevice(c, simg, ip, host)
            ip.grid = self.grid
            inverters[c.name] = ip
        start, pvs = self.config.start_s, []
        for c in (c for c in cfgs if c.kind == "pv"):
            img = SunSpecImage(PV_MODELS)
            pv = PvPhysics(c, img, start, self._rng(c.name))
            pvs.append(pv)
            self.devices[c.name] = SimulatedDevice(c, img, pv, host)
        for c in (c for c in cfgs if c.kind == "meter"):
            invs = [inverters[c.inverter]] if c.inverter else list(inverters.values())
            img = SunSpecImage(METER_MODELS)
            mp = MeterPhysics(c, img, invs, pvs, start, self._rng(c.name), self.grid)
            self.devices[c.name] = SimulatedDevice(c, img, mp, host)
        # Keep the configured order for iteration (start/stop, reports).
        self.devices = {c.name: self.devices[c.name] for c in cfgs}

    def _rng(self, name: str) -> random.Random:
        """One random stream per device: adding a device does not change another's noise."""
        return random.Random(f"{self.config.seed}:{name}")

    @staticmethod
    def _pick(name: str | None, found: dict[str, BatteryPhysics]) -> BatteryPhysics | None:
        """The named battery, else the first one configured (None: an inverter on its own)."""
        if name is not None:
            return found[name]
        return next(iter(found.values()), None)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, run_physics: bool = True) -> None:
        """Start every Modbus server; then step physics in the background unless told not to
        (tests that step by hand call `advance()`)."""
        started: list[SimulatedDevice] = []
        try:
            for d in self.devices.values():
                await d.start()
                started.append(d)
        except BaseException:
            for d in started:
                await d.stop()
            raise
        if run_physics:
            self._task = asyncio.create_task(self._run(self.clock()), name="sim-physics")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for d in self.devices.values():
            await d.stop()

    async def __aenter__(self) -> SiteSimulator:
        await self.start()
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.stop()

    async def _run(self, last: float) -> None:
        while True:
            await asyncio.sleep(self.config.step_s)
            now = self.clock()
            try:
                self.advance((now - last) * self.config.time_scale)
            except Exception:  # a physics bug must not take the Modbus servers down
                log.exception("simulator physics step failed")
            last = now

    def advance(self, sim_seconds: float, publish: bool = True) -> None:
        """Step the physics by `sim_seconds` of simulated time (sub-stepped), then show the
        result in the registers. `publish=False` (the backtest) leaves the registers as they
        were: the physics objects hold the state."""
        left = max(0.0, sim_seconds)
        while left > 1e-12:
            dt = min(left, MAX_STEP_S)
            self.grid.step(dt)
            for d in self._stepping:
                d.step(dt)
            self.sim_time += dt
            left -= dt
        if publish:
            for d in self._stepping:
                d.publish()

    # -- API -------------------------------------------------------------------------------
    def device(self, name: str) -> SimulatedDevice:
        try:
            return self.devices[name]
        except KeyError:
            raise KeyError(
                f"no simulated device {name!r} (have {', '.join(self.devices)})"
            ) from None

    def port(self, name: str) -> int:
        return self.device(name).port

    @property
    def ports(self) -> dict[str, int]:
        return {n: d.port for n, d in self.devices.items()}

    def value(self, device: str, model: int | str, point: str) -> PointValue:
        """The engineering value the device serves now (None = not implemented)."""
        return self.device(device).value(model, point)

    def set_value(self, device: str, model: int | str, point: str, value: PointValue) -> None:
        self.device(device).set_value(model, point, value)

    def inject(
        self, device: str, action: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Fault injection, the same actions as MQTT `{root}/sim/{device}/cmd/{action}`.

        Raises InjectError(code, message) on a bad request."""
        if device not in self.devices:
            raise InjectError("unknown_device", f"device: no simulated device {device!r}")
        return self.device(device).inject(action, body)
