"""One asyncio loop running the real simulator, the real Modbus adapters and the controller,
all over a real Mosquitto: the whole site for end-to-end tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from adapters.modbus.service import make_adapters
from adapters.simulator import SiteSimulator
from edge.config.site import parse_site
from edge.controller.config import ControllerSchema, ControllerSettings
from edge.controller.shell import ControllerService
from edge.mqtt import BrokerSettings, MqttClient, Requester, Topics

SITE = "e2e"
T = Topics(SITE)


def sim_devices(profile: str, **battery: Any) -> list[dict[str, Any]]:
    inv_profile = {"sunspec_704": "sunspec", "sunspec_123": "legacy", "rhombus_res125": "res125"}[
        profile
    ]
    return [
        {"name": "battery", "kind": "battery", "connect_delay_s": 0.2, **battery},
        {"name": "inverter", "kind": "inverter", "profile": inv_profile, "battery": "battery"},
    ]


def adapter_tables(profile: str, poll_s: float = 0.1) -> list[dict[str, Any]]:
    common = {"poll_s": poll_s, "refresh_s": 5.0}
    inv: dict[str, Any] = {"name": "inverter", "kind": "sunspec", **common}
    if profile == "rhombus_res125":
        inv = {
            "name": "inverter",
            "kind": "pointmap",
            "pointmap": "res125",
            "readback_tolerance": {"res125/Heartbeat": 10},
            **common,
        }
    return [{"name": "battery", "kind": "sunspec", **common}, inv]


class ControllerSite:
    """`async with ControllerSite(broker, "sunspec_704", time_scale=20) as site:`"""

    def __init__(
        self,
        broker: Any,
        profile: str = "sunspec_704",
        time_scale: float = 1.0,
        controller: dict[str, Any] | None = None,
        battery: dict[str, Any] | None = None,
        meter: dict[str, Any] | None = None,
        meter_poll_s: float = 0.5,
        pv: dict[str, Any] | None = None,
    ) -> None:
        """`meter`: simulate a site meter (203) with these options (`load_w`, `load_profile`),
        polled every `meter_poll_s` by its own adapter, as a real meter would be."""
        self.broker = broker
        self.profile = profile
        self.meter = meter
        self.meter_poll_s = meter_poll_s
        devices = sim_devices(profile, **(battery or {}))
        if meter is not None:
            devices.append({"name": "meter", "kind": "meter", "inverter": "inverter", **meter})
        self.pv = pv  # a PV inverter (`pv` device), polled like the meter
        if pv is not None:
            devices.append({"name": "pv", "kind": "pv", **pv})
        self.sim = SiteSimulator(
            {
                "time_scale": time_scale,
                "step_s": 0.02,
                "devices": devices,
            },
            site=SITE,
        )
        self.controller_cfg = {
            "profile": profile,
            "restart_settle_s": 0.5,
            "on_restart": "report",
            **({"pv": "pv"} if pv is not None else {}),
            **(controller or {}),
        }
        self.stop = asyncio.Event()
        self.ctl_stop = asyncio.Event()  # the controller alone can be stopped and restarted
        self.tasks: list[asyncio.Task[Any]] = []
        self.settings: ControllerSettings = ControllerSchema().load(self.controller_cfg)
        self.bsettings = BrokerSettings(broker.host, broker.port, keepalive=2)
        self.service = ControllerService(SITE, self.bsettings, self.settings)
        self.client = MqttClient(self.bsettings, "e2e-operator")
        self.requester = Requester(self.client, T)

    async def __aenter__(self) -> ControllerSite:
        await self.sim.start()
        tables = []
        meter_table = {"name": "meter", "kind": "sunspec", "poll_s": self.meter_poll_s}
        if self.pv is not None:
            tables.append({"name": "pv", "kind": "sunspec", "poll_s": self.meter_poll_s,
                           "port": self.sim.port("pv")})  # fmt: skip
        for d in adapter_tables(self.profile) + ([meter_table] if self.meter is not None else []):
            tables.append({**d, "port": self.sim.port(d["name"])})
        site = parse_site(
            {
                "site": {"id": SITE},
                "broker": {"host": self.broker.host, "port": self.broker.port, "keepalive": 2},
                "devices": tables,
            }
        )
        self.adapters = make_adapters(site)
        self.tasks = [asyncio.create_task(a.run(self.stop)) for a in self.adapters]
        await self.client.start()
        # controller last, as `bess-edge run` does
        self.ctl_task = asyncio.create_task(self.service.run(self.ctl_stop))
        await self.wait(lambda: self.ctl is not None and self.ctl.p.soc() is not None, 10)
        for dev in ("battery", "inverter"):
            await self.wait(lambda d=dev: self.ctl.t.status(d) == "online", 10, f"{dev} online")
        return self

    async def restart_controller(self, **controller: Any) -> None:
        """Stop the controller without a `stop` command (devices keep running), start anew."""
        self.ctl_stop.set()
        await asyncio.wait_for(self.ctl_task, 10)
        self.ctl_stop = asyncio.Event()
        self.settings = ControllerSchema().load({**self.controller_cfg, **controller})
        self.service = ControllerService(SITE, self.bsettings, self.settings)
        self.ctl_task = asyncio.create_task(self.service.run(self.ctl_stop))
        await self.wait(lambda: self.ctl is not None and self.ctl.p.soc() is not None, 10)

    async def __aexit__(self, *_: Any) -> None:
        self.ctl_stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ctl_task, 10)
        self.stop.set()
        for t in self.tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(t, 10)
        await self.client.stop()
        await self.sim.stop()

    @property
    def ctl(self) -> Any:
        return self.service.controller

    async def cmd(self, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.requester.request(T.controller_cmd(name), body or {}, timeout=5)

    async def wait(self, pred: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if pred():
                    return
            except (AttributeError, TypeError):
                pass
            if time.monotonic() > deadline:
                state = self._debug()
                raise TimeoutError(f"timed out waiting for {what or pred}; controller {state}")
            await asyncio.sleep(0.01)

    def _debug(self) -> Any:
        """What a timed-out wait reports: controller snapshot and the simulator's view."""
        if self.ctl is None:
            return None
        v = self.value
        return {
            "controller": self.ctl.snapshot(),
            "inverter_power_w": self.sim.device("inverter").physics.power_w,
            "soc": v("battery", 802, "SoC"),
            "battery_state": v("battery", 802, "State"),
        }

    async def wait_state(self, state: str, timeout: float = 5.0) -> None:
        await self.wait(lambda: self.ctl.state == state, timeout, f"state {state}")

    def value(self, device: str, model: int | str, point: str) -> Any:
        return self.sim.value(device, model, point)


# -- closed loop: what the mode tests and the benchmark measure --------------------------------
def grid(site: ControllerSite) -> float:
    return float(site.value("meter", 203, "W"))


def inverter_w(site: ControllerSite) -> float:
    return float(site.value("inverter", 701, "W"))


def set_load(site: ControllerSite, w: float) -> None:
    """A load switched on or off at the site: the simulator's `load` injection where it has
    one, else its meter's configured load (read by the physics at every step)."""
    try:
        site.sim.inject("meter", "load", {"w": w})
    except Exception as exc:  # a simulator without site-load injection: unknown_command
        if getattr(exc, "code", None) != "unknown_command":
            raise
        site.sim.device("meter").physics.cfg.load_w = w  # type: ignore[attr-defined]


async def sample(
    site: ControllerSite, seconds: float, dt: float = 0.05
) -> list[tuple[float, float]]:
    t0 = time.monotonic()
    out = []
    while (now := time.monotonic() - t0) < seconds:
        out.append((now, grid(site)))
        await asyncio.sleep(dt)
    return out


def settling(series: list[tuple[float, float]], target: float, band: float) -> float | None:
    """The time after which the series stays within `band` of `target` (None: never)."""
    last_out = None
    for t, w in series:
        if abs(w - target) > band:
            last_out = t
    if last_out is None:
        return 0.0
    return None if last_out >= series[-1][0] else last_out


async def started(site: ControllerSite) -> None:
    r = await site.cmd("start")
    assert r["ok"], r
    await site.wait_state("holding", 5)


def step_response(series: list[tuple[float, float]], target: float) -> dict[str, float | None]:
    """Settling time, the lowest import once the step is seen, and the ripple at the end."""
    seen = next(i for i, (_, w) in enumerate(series) if w > target + 1000)
    after = [w for _, w in series[seen:]]
    tail = [w for t, w in series if t >= series[-1][0] - 3]
    return {
        "settle_s": settling(series, target, 1000.0),
        "lowest_w": min(after),
        "tail_pp_w": max(tail) - min(tail),
    }
