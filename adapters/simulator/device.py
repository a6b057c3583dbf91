"""One simulated device: its register image, its physics, its Modbus TCP server and its faults.

The pymodbus `SimDevice` action hook is the only door to the registers: on every request it
copies the current image into pymodbus' register list, and on a write it applies the values
to the image first (refusing read-only registers with ILLEGAL_ADDRESS) and tells the physics.
A frozen device parks requests on a future, so the event loop keeps running and connections
stay open while nothing is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from adapters.simulator.config import SimDeviceConfig
from adapters.simulator.injection import (
    InjectError,
    inject_cloud,
    inject_grid,
    inject_load,
    parse_bool,
    parse_int,
)
from adapters.simulator.physics import (
    BatteryPhysics,
    InverterPhysics,
    MeterPhysics,
    Physics,
    PvPhysics,
)
from adapters.simulator.registers import Image, PointValue, UnknownPoint
from edge.families import families

__all__ = ["ACTIONS", "InjectError", "SimulatedDevice"]

log = logging.getLogger(__name__)

ACTIONS = (
    "alarm",
    "state",
    "inverter_fault",
    "freeze",
    "slow",
    "kill",
    "drop",
    "corrupt_sf",
    "stale",
    "clear",
    "get",
    "load",
    "cloud",
    "grid",
)
INVERTER_FAULT_POINTS: dict[str, dict[str, int | str]] = {
    f.sim_profile: dict(f.fault_points) for f in families().values()
}


STATE_POINTS = ("St", "InvSt")  # operating states: forced as given, recomputed on release


class SimulatedDevice:
    def __init__(self, cfg: SimDeviceConfig, image: Image, physics: Physics, host: str) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.image = image
        self.physics = physics
        self.host = host
        self.port = cfg.port
        self.frozen = False
        self.stale = False
        self.delay_s = 0.0  # `slow`: every request is answered this late
        self.killed = False  # `kill`: the Modbus server is gone (connections refused)
        self._kill_task: asyncio.Task[None] | None = None
        self._parked: set[asyncio.Future[None]] = set()
        self._server: ModbusTcpServer | None = None

    # -- Modbus ----------------------------------------------------------------------------
    async def start(self) -> None:
        regs = self.image.registers()
        dev = SimDevice(
            id=self.cfg.unit_id,
            simdata=[SimData(self.image.base, values=list(regs), datatype=DataType.REGISTERS)],
            action=self._action,
        )
        # the same port on a restart after `kill` (cfg.port may be 0 = any)
        server = ModbusTcpServer(dev, address=(self.host, self.port))
        await server.serve_forever(background=True)
        transport: Any = server.transport
        self.port = int(transport.sockets[0].getsockname()[1])
        self._server = server
        log.info(
            "sim %s (%s/%s) on %s:%s",
            self.name,
            self.cfg.kind,
            self.cfg.profile,
            self.host,
            self.port,
        )

    async def stop(self) -> None:
        self._release_parked()
        if self._kill_task is not None:
            with contextlib.suppress(Exception):
                await self._kill_task
        if self._server is not None:
            self.drop()
            await self._server.shutdown()
            self._server = None

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if self.frozen:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._parked.add(fut)
            try:
                await fut  # cancelled on unfreeze/stop: the request then ends without a reply
            finally:
                self._parked.discard(fut)
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        if set_values:
            values = [int(v) for v in set_values]
            err = self.image.check_write(address, len(values))
            if err is not None:
                log.info("sim %s: write refused: %s", self.name, err)
                return ExcCodes.ILLEGAL_ADDRESS
            touched = self.image.write(address, values)
            self.physics.on_write(touched)
        regs = self.image.registers()
        off = self.image.base - start_address
        current[off : off + len(regs)] = regs
        if set_values:
            o = address - self.image.base
            set_values[:] = regs[o : o + len(set_values)]  # type: ignore[assignment]
        return None

    def _set_killed(self, killed: bool) -> None:
        """`kill`: take the Modbus server away (or bring it back on the same port).

        The physics keeps running: a device whose communication died still obeys its own
        revert timers. The change is asynchronous; the next request sees it.
        """
        if killed == self.killed:
            return
        self.killed = killed
        previous = self._kill_task

        async def apply() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous
            if killed and self._server is not None:
                self._release_parked()
                server, self._server = self._server, None
                for c in list(server.active_connections.values()):
                    with contextlib.suppress(Exception):
                        c.close()
                await server.shutdown()
            elif not killed and self._server is None:
                await self.start()

        self._kill_task = asyncio.get_running_loop().create_task(apply())

    def _release_parked(self) -> None:
        for fut in list(self._parked):
            fut.cancel()

    def drop(self) -> int:
        """Close every open connection; returns how many."""
        if self._server is None:
            return 0
        conns = list(self._server.active_connections.values())
        for c in conns:
            with contextlib.suppress(Exception):
                c.close()
        return len(conns)

    def step(self, dt: float) -> None:
        """Physics only; the registers change at `publish()`.

        A stale battery or inverter stands still; behind a stale meter or PV device the site
        goes on (load, sun, grid flow) and only the reading is stuck.
        """
        if not self.stale or isinstance(self.physics, (MeterPhysics, PvPhysics)):
            self.physics.step(dt)

    def publish(self) -> None:
        if not self.stale:
            self.physics.publish()

    # -- values ----------------------------------------------------------------------------
    def value(self, model: int | str, point: str) -> PointValue:
        return self.image.get(model, point)

    def set_value(self, model: int | str, point: str, value: PointValue) -> None:
        ph = self.physics
        if isinstance(ph, BatteryPhysics) and str(model) == "802" and point == "SoC":
            ph.set_soc(float(value))  # type: ignore[arg-type]
            return
        self.image.set(model, point, value)
        ph.on_write([(model, point)])

    # -- faults ----------------------------------------------------------------------------
    def faults(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        ph = self.physics
        if self.frozen:
            out["freeze"] = True
        if self.stale:
            out["stale"] = True
        if self.delay_s > 0:
            out["slow"] = {"delay_ms": round(self.delay_s * 1000)}
        if self.killed:
            out["kill"] = True
        if isinstance(ph, BatteryPhysics):
            if ph.forced_state is not None:
                out["state"] = ph.forced_state
            if ph.alarm_forced:
                out["alarm"] = [b for b in range(32) if ph.alarm_forced >> b & 1]
        if isinstance(ph, (InverterPhysics, PvPhysics)) and ph.fault_forced:
            out["inverter_fault"] = dict(ph.fault_forced)
        if isinstance(ph, MeterPhysics):
            load = ph.load
            if load.step_w:
                out["load"] = {"step_w": load.step_w}
            if load.fixed_w is not None:
                out.setdefault("load", {})["w"] = load.fixed_w
        if isinstance(ph, PvPhysics) and ph.irradiance.left_s > 0:
            out["cloud"] = {
                "depth": ph.irradiance.depth,
                "left_s": round(ph.irradiance.left_s, 1),
            }
        if self.image.corrupted_sf:
            out["corrupt_sf"] = self.image.corrupted_sf
        return out

    def inject(self, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Apply one fault-injection action (topics.md); returns the reply fields."""
        body = dict(body or {})
        ph = self.physics
        result: dict[str, Any] = {}
        if action == "alarm":
            bp = self._battery("alarm")
            bit = parse_int(body, "bit", 0, 31)
            on = parse_bool(body, "on", True)
            latch = parse_bool(body, "latch", False)
            mask = 1 << bit
            if on and latch:
                bp.alarm_latched |= mask
            elif on:
                bp.alarm_forced |= mask
            else:
                bp.alarm_forced &= ~mask
                bp.alarm_latched &= ~mask
            bp.publish()
            result["Evt1"] = self.image.get(802, "Evt1")
        elif action == "state":
            bp = self._battery("state")
            if "value" not in body:
                raise InjectError("invalid_payload", "value: required (an 802 State, or null)")
            bp.forced_state = None if body["value"] is None else parse_int(body, "value", 0, 65534)
            bp.trip_inverters()
            bp.publish()
            result["State"] = self.image.get(802, "State")
        elif action == "inverter_fault":
            if not isinstance(ph, (InverterPhysics, PvPhysics)):
                raise InjectError(
                    "invalid_payload", f"device {self.name}: inverter_fault needs an inverter"
                )
            allowed = INVERTER_FAULT_POINTS[ph.profile]
            point = body.get("point")
            if not isinstance(point, str) or point not in allowed:
                raise InjectError("unknown_point", f"point: must be one of {', '.join(allowed)}")
            fmodel = allowed[point]
            if body.get("value") is None:  # release: the inverter reports for itself again
                ph.fault_forced.pop(point, None)
                if point not in STATE_POINTS:
                    self.image.set(fmodel, point, 0)
            else:
                # `St`/`InvSt` are operating states (any value is forced, 0 = OFF included);
                # the other points are fault bits/summaries where 0 means "no fault".
                value = parse_int(body, "value", 0, 0xFFFFFFFE)
                self.image.set(fmodel, point, value)
                if value or point in STATE_POINTS:
                    ph.fault_forced[point] = value
                else:
                    ph.fault_forced.pop(point, None)
            if not ph.is_on():
                ph.trip()
            ph.publish()
            result["value"] = self.image.get(fmodel, point)
        elif action == "freeze":
            self.frozen = parse_bool(body, "on", True)
            if not self.frozen:
                self._release_parked()
        elif action == "slow":
            self.delay_s = parse_int(body, "delay_ms", 0, 60_000) / 1000.0
        elif action == "kill":
            self._set_killed(parse_bool(body, "on", True))
        elif action == "drop":
            result["dropped"] = self.drop()
        elif action == "corrupt_sf":
            model = body.get("model")
            point = body.get("point")
            if not isinstance(point, str) or not isinstance(model, (int, str)):
                raise InjectError("invalid_payload", "model and point: required")
            sf = None if body.get("value") is None else parse_int(body, "value", -10, 10)
            try:
                self.image.corrupt_sf(model, point, sf)
            except UnknownPoint as exc:
                raise InjectError("unknown_point", str(exc.args[0])) from None
        elif action == "stale":
            self.stale = parse_bool(body, "on", True)
        elif action == "clear":
            self.clear()
        elif action == "get":
            model, point = body.get("model"), body.get("point")
            if not isinstance(point, str) or not isinstance(model, (int, str)):
                raise InjectError("invalid_payload", "model and point: required")
            try:
                result["value"] = self.value(model, point)
            except UnknownPoint as exc:
                raise InjectError("unknown_point", str(exc.args[0])) from None
        elif action == "load":
            result.update(inject_load(ph, self.name, body))
            self.publish()
        elif action == "cloud":
            result.update(inject_cloud(ph, self.name, body))
            self.publish()
        elif action == "grid":
            if not isinstance(ph, MeterPhysics):
                raise InjectError("invalid_payload", f"device {self.name}: grid needs a meter")
            result.update(inject_grid(ph.grid, body))
            self.publish()
        else:
            raise InjectError("unknown_command", f"action: must be one of {', '.join(ACTIONS)}")
        result["faults"] = self.faults()
        return result

    def clear(self) -> None:
        ph = self.physics
        self.frozen = False
        self._release_parked()
        self.stale = False
        self.delay_s = 0.0
        self._set_killed(False)
        self.image.restore_sf()
        if isinstance(ph, BatteryPhysics):
            ph.forced_state = None
            ph.alarm_forced = 0
            ph.publish()
        if isinstance(ph, (InverterPhysics, PvPhysics)):
            for point in ph.fault_forced:
                if point not in STATE_POINTS:
                    self.image.set(INVERTER_FAULT_POINTS[ph.profile][point], point, 0)
            ph.fault_forced.clear()
            ph.publish()
        if isinstance(ph, MeterPhysics):
            ph.load.step_w, ph.load.fixed_w = 0.0, None
            ph.refresh()
            ph.publish()
        if isinstance(ph, PvPhysics):
            ph.irradiance.shade(0.0, 0.0)

    def _battery(self, action: str) -> BatteryPhysics:
        if not isinstance(self.physics, BatteryPhysics):
            raise InjectError("invalid_payload", f"device {self.name}: {action} needs a battery")
        return self.physics
