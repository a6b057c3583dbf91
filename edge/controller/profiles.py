"""Device profiles: how one kind of battery + inverter is started, stopped and commanded.

Like the original's device subclasses, a profile is a class a user can subclass (configure it
with `profile_class = "mypkg.mymod:MyProfile"`). A profile talks to devices only through the
`DeviceWriter` port (set topics, topics.md) and reads them only from `Telemetry` (point topics).
A profile does no I/O: its methods return plans, the writes to make in order (edge.controller.plan),
which the controller core runs one confirmed write at a time. Every write is confirmed by
read-back, 0 included (field notes B5).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

from edge.controller.config import ControllerSettings
from edge.controller.faults import (
    BATTERY_STATE_CONNECTED,
    Fault,
    as_int,
    battery_faults,
)
from edge.controller.limits import Limits, compute_limits
from edge.controller.plan import Plan, PointWrite, Unsupported, WriteFailed, check_reply
from edge.controller.telemetry import Telemetry

__all__ = [
    "DeviceWriter",
    "Plan",
    "PointWrite",
    "Profile",
    "Unsupported",
    "WriteFailed",
    "check_reply",
    "profile_class",
]


class DeviceWriter(Protocol):
    """The shell's port to the set topics, through which it performs the core's writes:
    returns the reply dict, raises TimeoutError on no reply."""

    async def write(self, device: str, model: str, point: str, value: Any) -> dict[str, Any]: ...


Step = tuple[str, Callable[[], Plan]]


class Profile:
    """Base profile: the SunSpec 802 battery. Subclasses add the inverter."""

    name = "base"
    battery_model = "802"
    inverter_model = ""
    supports_pf = False

    def __init__(
        self, settings: ControllerSettings, writer: DeviceWriter, telemetry: Telemetry
    ) -> None:
        self.s = settings
        self.writer = writer
        self.t = telemetry
        self.bat = settings.battery
        self.inv = settings.inverter

    # -- the one way to say a write -----------------------------------------------------------
    @staticmethod
    def put(device: str, model: str, point: str, value: Any, tol: float | None = 0.5) -> PointWrite:
        """One write, confirmed by read-back within `tol` (None: acknowledgement only)."""
        return PointWrite(device, str(model), point, value, tol)

    @staticmethod
    def w_tol(value: float) -> float:
        """Read-back tolerance for a W value: scale-factor rounding, never more than 0.2 %."""
        return max(0.5, abs(value) * 0.002)

    # -- battery (802) ---------------------------------------------------------------------
    def soc(self) -> float | None:
        return self.t.number(self.bat, self.battery_model, "SoC")

    def soc_age(self) -> float | None:
        return self.t.age(self.bat, self.battery_model, "SoC")

    def battery_v(self) -> float | None:
        return self.t.number(self.bat, self.battery_model, "V")

    def is_connected(self) -> bool:
        return as_int(self.t.get(self.bat, self.battery_model, "State")) == BATTERY_STATE_CONNECTED

    def battery_limits(self) -> dict[str, float | None]:
        n = self.t.number
        return {
            "battery_v": self.battery_v(),
            "a_cha_max": n(self.bat, self.battery_model, "AChaMax"),
            "a_discha_max": n(self.bat, self.battery_model, "ADisChaMax"),
            "w_cha_rte_max": n(self.bat, self.battery_model, "WChaRteMax"),
            "w_discha_rte_max": n(self.bat, self.battery_model, "WDisChaRteMax"),
        }

    def limit_points(self) -> set[tuple[str, str, str]]:
        """Points whose change must re-evaluate the limits in force."""
        m = self.battery_model
        return {
            (self.bat, m, p) for p in ("V", "AChaMax", "ADisChaMax", "WChaRteMax", "WDisChaRteMax")
        }

    def reset_battery_alarms(self) -> Plan:
        return [self.put(self.bat, self.battery_model, "AlmRst", 1, tol=None)]

    def close_contactors(self) -> Plan:
        return [self.put(self.bat, self.battery_model, "SetOp", 1)]

    def open_contactors(self) -> Plan:
        return [self.put(self.bat, self.battery_model, "SetOp", 2)]

    def battery_faults(self) -> list[Fault]:
        return battery_faults(
            self.t.get(self.bat, self.battery_model, "State"),
            self.t.get(self.bat, self.battery_model, "Evt1"),
        )

    # -- inverter: subclasses --------------------------------------------------------------
    def reset_inverter_alarms(self) -> Plan:
        """Inverters without an alarm-reset register write nothing."""
        return []

    def unlock(self) -> Plan:
        """Inverters without a security code write nothing."""
        return []

    def enable_power_mode(self) -> Plan:
        raise NotImplementedError

    def write_power(self, signed_w: float) -> Plan:
        """The writes of a signed setpoint (+ discharge, - charge), already clamped, in W."""
        raise NotImplementedError

    def inverter_off(self) -> Plan:
        raise NotImplementedError

    def write_pf(self, pf: float) -> Plan:
        raise Unsupported(f"pf: profile {self.name} supports only unity power factor")

    def inverter_rating(self) -> tuple[float | None, float | None]:
        """(charge W, discharge W) the inverter can do, from telemetry or configuration."""
        r = self.s.inverter_rating_w
        return r, r

    def inverter_faults(self) -> list[Fault]:
        return []

    def inverter_faults_active(self) -> list[Fault]:
        """Causes that are faults only while the inverter should be in power mode (an inverter
        that reports OFF while it is meant to deliver). Not checked by reset or start."""
        return []

    def inverter_energised(self) -> dict[str, Any]:
        """What the restart report shows about the inverter; empty when it looks off."""
        return {}

    # -- grid support: families whose inverter runs it natively override these ----------
    native_grid: frozenset[str] = frozenset()
    supports_var = False  # the controller can command reactive power (controller-side Q)

    def write_var(self, var: float) -> Plan:
        """Hold `var` VAr (+ injected); families with a reactive-power setpoint override."""
        raise Unsupported(f"var: profile {self.name} takes no reactive-power setpoint")

    def write_grid(self, g: Any, name: str) -> Plan:
        """The writes of grid function `name` of settings `g` to the inverter."""
        raise Unsupported(f"{name}: profile {self.name} does not run it in the inverter")

    def grid_capacity_problem(self, g: Any, name: str) -> str | None:
        return None

    def grid_differences(self, g: Any) -> list[str]:
        """Native functions whose curve on the inverter differs from `g` (the site file)."""
        return []

    # -- heartbeat (B7): profiles with a watchdog override these ---------------------------
    def heartbeat_needs_reset(self) -> bool:
        return False

    def reset_heartbeat(self) -> Plan:
        return []

    def heartbeat_fault(self, energised_for_s: float) -> Fault | None:
        return None

    # -- limits in force -------------------------------------------------------------------
    def limits(self, operator: tuple[float | None, float | None] = (None, None)) -> Limits:
        """The limits in force from what this profile reads (battery and inverter), the
        configured maxima and the operator's run-time limits (charge W, discharge W)."""
        b = self.battery_limits()
        inv_c, inv_d = self.inverter_rating()
        return compute_limits(
            battery_v=b["battery_v"],
            a_cha_max=b["a_cha_max"],
            a_discha_max=b["a_discha_max"],
            w_cha_rte_max=b["w_cha_rte_max"],
            w_discha_rte_max=b["w_discha_rte_max"],
            inverter_charge_w=inv_c,
            inverter_discharge_w=inv_d,
            configured_charge_w=self.s.max_charge_w,
            configured_discharge_w=self.s.max_discharge_w,
            operator_charge_w=operator[0],
            operator_discharge_w=operator[1],
        )

    # -- sequences in the original's order -------------------------------------------------
    def reset_alarms(self) -> Plan:
        return self.reset_battery_alarms() + self.reset_inverter_alarms()

    def start_steps(self) -> list[Step]:
        """Reset alarms, unlock, close the contactors; then the battery must report CONNECTED
        before `enable_power_mode` and power 0. A failed step ends the start."""
        return [
            ("reset alarms", self.reset_alarms),
            ("unlock", self.unlock),
            ("close contactors", self.close_contactors),
        ]

    def stop_steps(self) -> list[Step]:
        """Power 0, inverter off, open the contactors. Each step runs even if one before failed."""
        return [
            ("power 0", lambda: self.write_power(0.0)),
            ("inverter off", self.inverter_off),
            ("open contactors", self.open_contactors),
        ]

    def restart_report(self) -> dict[str, Any]:
        """What the controller finds on its own restart (issue 4, item 9)."""
        state = as_int(self.t.get(self.bat, self.battery_model, "State"))
        found: dict[str, Any] = {
            "battery_state": state,
            "battery_connected": state == BATTERY_STATE_CONNECTED,
            "soc": self.soc(),
            "battery_status": self.t.status(self.bat),
            "inverter_status": self.t.status(self.inv),
        }
        found.update(self.inverter_energised())
        return found

    @staticmethod
    def found_energised(found: dict[str, Any]) -> bool:
        return bool(found.get("battery_connected") or found.get("inverter_exporting"))


def profile_class(settings: ControllerSettings) -> type[Profile]:
    """The configured profile class: `profile_class` (a user subclass) or the family's."""
    if settings.profile_class:
        mod_name, _, cls_name = settings.profile_class.partition(":")
        cls = getattr(importlib.import_module(mod_name), cls_name)
        if not (isinstance(cls, type) and issubclass(cls, Profile)):
            raise TypeError(f"profile_class {settings.profile_class!r} is not a Profile subclass")
        return cls
    from edge.families import family

    return family(settings.profile).profile_class()


_MOVED = {
    "SunSpec704Profile": "sunspec_704",
    "SunSpec123Profile": "sunspec_123",
    "RhombusRes125Profile": "rhombus_res125",
}


def __getattr__(name: str) -> Any:
    """The built-in profiles live with their family (edge/families/<name>/profile.py); this
    keeps `from edge.controller.profiles import SunSpec704Profile` working for subclasses."""
    if name in _MOVED:
        from edge.families import family

        return family(_MOVED[name]).profile_class()
    raise AttributeError(name)
