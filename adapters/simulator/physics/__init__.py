"""Device physics: pure logic over a register image, stepped with simulated seconds.

No I/O and no clock here: `step(dt)` advances by `dt` simulated seconds without touching
registers, `publish()` shows the state in the register image, and `on_write()` is told which
points a Modbus client wrote. The site simulator owns the clock and publishes after each
advance; the backtest steps without publishing and reads the physics state directly.

Signs (topics.md "Power signs"): battery and battery inverter positive = discharge, PV >= 0,
meter positive = import, so grid = load - PV - battery.

One module per device: `battery` (802), `inverter` (701/702/704, legacy 1xx, RES-125, with
its initial registers in `inverter_registers`), `pv` (701/702), `meter` (203), and `profiles`
(site load and irradiance).
"""

from adapters.simulator.physics.battery import BATTERY_MODELS, BatteryPhysics
from adapters.simulator.physics.common import (
    STATE_CONNECTED,
    STATE_DISCONNECTED,
    STATE_FAULT,
    STATE_INITIALIZING,
    pick_sf,
    set_common,
)
from adapters.simulator.physics.inverter import (
    INVERTER_MODELS,
    RES125_FAULT_POINTS,
    InverterPhysics,
)
from adapters.simulator.physics.meter import METER_MODELS, MeterPhysics
from adapters.simulator.physics.pv import PV_MODELS, PvPhysics

Physics = BatteryPhysics | InverterPhysics | MeterPhysics | PvPhysics

__all__ = [
    "BATTERY_MODELS",
    "INVERTER_MODELS",
    "METER_MODELS",
    "PV_MODELS",
    "RES125_FAULT_POINTS",
    "STATE_CONNECTED",
    "STATE_DISCONNECTED",
    "STATE_FAULT",
    "STATE_INITIALIZING",
    "BatteryPhysics",
    "InverterPhysics",
    "MeterPhysics",
    "Physics",
    "PvPhysics",
    "pick_sf",
    "set_common",
]
