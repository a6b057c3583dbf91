"""Device profiles: how one kind of battery + inverter is started, stopped and commanded.

Like the original's device subclasses, a profile is a class a user can subclass (configure it
with `profile_class = "mypkg.mymod:MyProfile"`). A profile talks to devices only through the
`DeviceWriter` port (set topics, topics.md) and reads them only from `Telemetry` (point topics).
Every write is confirmed by read-back, 0 included (field notes B5).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from edge.controller.config import ControllerSettings
from edge.controller.faults import (
    BATTERY_STATE_CONNECTED,
    Fault,
    as_int,
    battery_faults,
)
from edge.controller.telemetry import Telemetry


class WriteFailed(Exception):
    """A write that was refused, timed out or whose read-back differs. Always a fault."""

    def __init__(self, device: str, model: str, point: str, value: Any, reason: str) -> None:
        super().__init__(f"write {device}/{model}/{point}={value!r} failed: {reason}")
        self.device, self.model, self.point, self.value, self.reason = (
            device,
            model,
            point,
            value,
            reason,
        )

    def fault(self) -> Fault:
        return Fault("write_failed", str(self))


class Unsupported(Exception):
    """The profile cannot do what was asked (for example a power factor)."""


class DeviceWriter(Protocol):
    """The port to the set topics: returns the reply dict, raises TimeoutError on no reply."""

    async def write(self, device: str, model: str, point: str, value: Any) -> dict[str, Any]: ...


def check_reply(reply: Any, value: Any, tol: float | None) -> str | None:
    """Why a write reply does not confirm `value`, or None if it does (B5: `False == 0` is no
    confirmation; a missing or non-numeric read-back is no confirmation either)."""
    if not isinstance(reply, dict):
        return "reply is not a JSON object"
    if reply.get("ok") is not True:
        err = reply.get("error")
        if not isinstance(err, dict):
            err = {}
        return f"refused: {err.get('code', 'unknown')} {err.get('message', '')}".strip()
    if tol is None:  # a pulse register (alarm reset): the device acknowledged, nothing to compare
        return None
    rb = reply.get("value")
    if isinstance(value, str):
        return None if rb == value else f"read-back {rb!r} != {value!r}"
    if isinstance(rb, bool) or not isinstance(rb, int | float) or not math.isfinite(rb):
        return f"read-back {rb!r} is not a number"
    if abs(float(rb) - float(value)) > tol:
        return f"read-back {rb!r} != {value!r}"
    return None


Step = tuple[str, Callable[[], Awaitable[None]]]


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

    # -- the one write path ----------------------------------------------------------------
    async def write(
        self, device: str, model: str, point: str, value: Any, tol: float | None = 0.5
    ) -> None:
        """Write and confirm by read-back within `tol` (None: acknowledgement only)."""
        try:
            reply = await self.writer.write(device, model, point, value)
        except TimeoutError:
            raise WriteFailed(device, model, point, value, "no reply (timeout)") from None
        why = check_reply(reply, value, tol)
        if why is not None:
            raise WriteFailed(device, model, point, value, why)

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

    async def reset_battery_alarms(self) -> None:
        await self.write(self.bat, self.battery_model, "AlmRst", 1, tol=None)

    async def close_contactors(self) -> None:
        await self.write(self.bat, self.battery_model, "SetOp", 1)

    async def open_contactors(self) -> None:
        await self.write(self.bat, self.battery_model, "SetOp", 2)

    def battery_faults(self) -> list[Fault]:
        return battery_faults(
            self.t.get(self.bat, self.battery_model, "State"),
            self.t.get(self.bat, self.battery_model, "Evt1"),
        )

    # -- inverter: subclasses --------------------------------------------------------------
    async def reset_inverter_alarms(self) -> None:
        """Inverters without an alarm-reset register do nothing."""

    async def unlock(self) -> None:
        """Inverters without a security code do nothing."""

    async def enable_power_mode(self) -> None:
        raise NotImplementedError

    async def write_power(self, signed_w: float) -> None:
        """Write a signed setpoint (+ discharge, - charge), already clamped, in W."""
        raise NotImplementedError

    async def inverter_off(self) -> None:
        raise NotImplementedError

    async def write_pf(self, pf: float) -> None:
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

    async def write_var(self, var: float) -> None:
        """Hold `var` VAr (+ injected); families with a reactive-power setpoint override."""
        raise Unsupported(f"var: profile {self.name} takes no reactive-power setpoint")

    async def write_grid(self, g: Any, name: str) -> None:
        """Write grid function `name` of settings `g` to the inverter (confirmed)."""
        raise Unsupported(f"{name}: profile {self.name} does not run it in the inverter")

    def grid_capacity_problem(self, g: Any, name: str) -> str | None:
        return None

    def grid_differences(self, g: Any) -> list[str]:
        """Native functions whose curve on the inverter differs from `g` (the site file)."""
        return []

    # -- heartbeat (B7): profiles with a watchdog override these ---------------------------
    def heartbeat_needs_reset(self) -> bool:
        return False

    async def reset_heartbeat(self) -> None:
        return None

    def heartbeat_fault(self, energised_for_s: float) -> Fault | None:
        return None

    # -- sequences in the original's order -------------------------------------------------
    async def reset_alarms(self) -> None:
        await self.reset_battery_alarms()
        await self.reset_inverter_alarms()

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
