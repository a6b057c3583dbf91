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
    ALRM_701_BITS,
    BATTERY_STATE_CONNECTED,
    Fault,
    as_int,
    battery_faults,
    bit_names,
)
from edge.controller.limits import to_device
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


class SunSpec704Profile(Profile):
    """802 battery + IEEE 1547 inverter (701 status, 702 ratings, 704 WSet with revert timer)."""

    name = "sunspec_704"
    inverter_model = "704"

    async def enable_power_mode(self) -> None:
        m = self.inverter_model
        await self.write(self.inv, m, "WSetMod", 1)  # WATTS
        await self.write(self.inv, m, "WSetRvrtTms", int(self.s.lease_s))
        await self.write(self.inv, m, "WSet", 0)
        await self.write(self.inv, m, "WSetEna", 1)

    async def write_power(self, signed_w: float) -> None:
        v = math.trunc(to_device(signed_w, self.s.charge_sign))  # toward 0: never above a limit
        await self.write(self.inv, self.inverter_model, "WSet", v, tol=self.w_tol(v))

    async def inverter_off(self) -> None:
        await self.write(self.inv, self.inverter_model, "WSet", 0)
        await self.write(self.inv, self.inverter_model, "WSetEna", 0)

    def inverter_rating(self) -> tuple[float | None, float | None]:
        n = self.t.number
        wmax = n(self.inv, "702", "WMaxRtg")
        cha = n(self.inv, "702", "WChaRteMaxRtg") or wmax
        dis = n(self.inv, "702", "WDisChaRteMaxRtg") or wmax
        for p, which in (("WChaRteMax", "c"), ("WDisChaRteMax", "d"), ("WMax", "b")):
            setting = n(self.inv, "702", p)
            if setting is not None and setting > 0:
                if which in "cb":
                    cha = setting if cha is None else min(cha, setting)
                if which in "db":
                    dis = setting if dis is None else min(dis, setting)
        r = self.s.inverter_rating_w
        if r is not None:
            cha = r if cha is None else min(cha, r)
            dis = r if dis is None else min(dis, r)
        return cha, dis

    def limit_points(self) -> set[tuple[str, str, str]]:
        pts = {
            (self.inv, "702", p)
            for p in (
                "WMaxRtg",
                "WChaRteMaxRtg",
                "WDisChaRteMaxRtg",
                "WMax",
                "WChaRteMax",
                "WDisChaRteMax",
            )
        }
        return super().limit_points() | pts

    def inverter_faults(self) -> list[Fault]:
        out = []
        alrm = as_int(self.t.get(self.inv, "701", "Alrm"))
        if alrm:
            out += [
                Fault("inverter_alarm", f"701 Alrm {b}") for b in bit_names(alrm, ALRM_701_BITS)
            ]
        if as_int(self.t.get(self.inv, "701", "InvSt")) == 6:
            out.append(Fault("inverter_fault", "701 InvSt is FAULT (6)"))
        return out

    def inverter_faults_active(self) -> list[Fault]:
        if as_int(self.t.get(self.inv, "701", "St")) == 0:
            return [Fault("inverter_fault", "701 St is OFF while in power mode")]
        return []

    def inverter_energised(self) -> dict[str, Any]:
        w = self.t.number(self.inv, "701", "W")
        wset = self.t.number(self.inv, self.inverter_model, "WSet")
        return {
            "inverter_w": w,
            "inverter_wset": wset,
            "inverter_wset_ena": self.t.get(self.inv, self.inverter_model, "WSetEna"),
            "inverter_exporting": bool(w and abs(w) > 1.0) or bool(wset),
        }


class SunSpec123Profile(Profile):
    """802 battery + legacy SunSpec inverter (103 status, 121 WMax, 123 Conn, 124 storage).

    A setpoint is a forced charge or discharge rate: `StorCtl_Mod` bit 0 (CHARGE) with
    `InWRte` in % of `WChaMax`, or bit 1 (DISCHARGE) with `OutWRte` in % of `WMax`; the other
    rate is zeroed first so the two never add up.
    """

    name = "sunspec_123"
    inverter_model = "124"

    def _wmax(self) -> float | None:
        return self.t.number(self.inv, "121", "WMax")

    def _wchamax(self) -> float | None:
        return self.t.number(self.inv, "124", "WChaMax") or self._wmax()

    async def enable_power_mode(self) -> None:
        await self.write(self.inv, "123", "Conn", 1)
        await self.write(self.inv, "124", "InOutWRte_RvrtTms", int(self.s.lease_s))
        await self.write(self.inv, "124", "InWRte", 0)
        await self.write(self.inv, "124", "OutWRte", 0)

    async def write_power(self, signed_w: float) -> None:
        if signed_w == 0:
            await self.write(self.inv, "124", "OutWRte", 0, tol=0.051)
            await self.write(self.inv, "124", "InWRte", 0, tol=0.051)
            return
        charging = signed_w < 0
        ref = self._wchamax() if charging else self._wmax()
        rate, other, mode = ("InWRte", "OutWRte", 1) if charging else ("OutWRte", "InWRte", 2)
        if ref is None or ref <= 0:
            raise WriteFailed(self.inv, "124", rate, signed_w, "WChaMax/WMax unknown")
        pct = math.trunc(abs(signed_w) / ref * 1000) / 10  # toward 0, 0.1 % (InOutWRte_SF -1)
        await self.write(self.inv, "124", other, 0, tol=0.051)
        await self.write(self.inv, "124", rate, pct, tol=0.051)
        await self.write(self.inv, "124", "StorCtl_Mod", mode)

    async def inverter_off(self) -> None:
        await self.write(self.inv, "124", "StorCtl_Mod", 0)
        await self.write(self.inv, "123", "Conn", 0)

    def inverter_rating(self) -> tuple[float | None, float | None]:
        wmax = self.t.number(self.inv, "121", "WMax")
        wcha = self.t.number(self.inv, "124", "WChaMax")
        known = [x for x in (wmax, wcha) if x is not None]
        cha = min(known) if known else None
        r = self.s.inverter_rating_w
        if r is not None:
            cha = r if cha is None else min(cha, r)
            wmax = r if wmax is None else min(wmax, r)
        return cha, wmax

    def limit_points(self) -> set[tuple[str, str, str]]:
        return super().limit_points() | {(self.inv, "121", "WMax"), (self.inv, "124", "WChaMax")}

    def inverter_faults(self) -> list[Fault]:
        out = []
        if as_int(self.t.get(self.inv, "103", "St")) == 7:
            out.append(Fault("inverter_fault", "103 St is FAULT (7)"))
        evt = as_int(self.t.get(self.inv, "103", "Evt1"))
        if evt:
            out += [Fault("inverter_alarm", f"103 Evt1 {b}") for b in bit_names(evt, ALRM_701_BITS)]
        return out

    def inverter_faults_active(self) -> list[Fault]:
        if as_int(self.t.get(self.inv, "103", "St")) == 1:
            return [Fault("inverter_fault", "103 St is OFF while in power mode")]
        return []

    def inverter_energised(self) -> dict[str, Any]:
        w = self.t.number(self.inv, "103", "W")
        return {"inverter_w": w, "inverter_exporting": bool(w and abs(w) > 1.0)}


RHOMBUS_FAULT_REGISTERS = (
    "CIUFaultSummary",
    "MIUF1Summary",
    "MIUF2Summary",
    "MIUF3Summary",
    "MIUF4Summary",
    "Shutdowns",  # not checked by the original; a shut-down unit is not delivering power
)


class RhombusRes125Profile(Profile):
    """802 battery + Rhombus RES-125 (point map, model key `res125`): security code, OpMode,
    MaxPowerCommand in kW (or A), and the Heartbeat countdown (B7)."""

    name = "rhombus_res125"
    inverter_model = "res125"
    supports_pf = True
    OPMODE_STOP = 0
    OPMODE_CONSTANT_POWER = 1
    OPMODE_CONSTANT_CURRENT = 2
    OPMODE_RESET_UNIT = 61440

    def _unit_w(self) -> float | None:
        """W per MaxPowerCommand unit: kW in POWER mode, battery V in CURRENT mode."""
        if self.s.inverter_command_mode == "POWER":
            return self.s.rhombus_command_unit_w
        return self.battery_v()

    async def reset_inverter_alarms(self) -> None:
        await self.write(self.inv, "res125", "OpMode", self.OPMODE_RESET_UNIT, tol=None)

    async def unlock(self) -> None:
        await self.write(self.inv, "res125", "SecurityCode", self.s.security_code_value)

    async def enable_power_mode(self) -> None:
        await self.reset_heartbeat()
        await self.write(self.inv, "res125", "MaxPowerCommand", 0)
        mode = (
            self.OPMODE_CONSTANT_POWER
            if self.s.inverter_command_mode == "POWER"
            else self.OPMODE_CONSTANT_CURRENT
        )
        await self.write(self.inv, "res125", "OpMode", mode)

    async def write_power(self, signed_w: float) -> None:
        if signed_w == 0:
            cmd = 0.0
        else:
            unit = self._unit_w()
            if unit is None or unit <= 0:
                raise WriteFailed(
                    self.inv, "res125", "MaxPowerCommand", signed_w, "battery V unknown"
                )
            raw = to_device(signed_w, self.s.charge_sign) / unit
            cmd = math.trunc(raw * 1000) / 1000  # toward 0
            cmd = max(-self.s.max_inverter_command, min(self.s.max_inverter_command, cmd))
        await self.write(
            self.inv, "res125", "MaxPowerCommand", cmd, tol=max(0.0011, abs(cmd) * 0.002)
        )

    async def inverter_off(self) -> None:
        await self.write(self.inv, "res125", "OpMode", self.OPMODE_STOP)

    async def write_pf(self, pf: float) -> None:
        offset = math.copysign(1.0 - abs(pf), pf)
        offset = max(-0.5, min(0.5, offset))
        await self.write(self.inv, "res125", "PowerFactorOffset", round(offset, 3), tol=0.002)

    def inverter_rating(self) -> tuple[float | None, float | None]:
        unit = self._unit_w()
        r = None if unit is None else self.s.max_inverter_command * unit
        if self.s.inverter_rating_w is not None:
            r = self.s.inverter_rating_w if r is None else min(r, self.s.inverter_rating_w)
        return r, r

    def inverter_faults(self) -> list[Fault]:
        out = []
        for reg in RHOMBUS_FAULT_REGISTERS:
            v = as_int(self.t.get(self.inv, "res125", reg))
            if v:
                bits = [str(b) for b in range(32) if v >> b & 1]
                out.append(Fault("inverter_fault", f"res125 {reg} = {v} (bits {', '.join(bits)})"))
        for reg in ("GridOffStandaloneOn", "AutoTransition"):
            if as_int(self.t.get(self.inv, "res125", reg)):
                out.append(Fault("islanding", f"res125 {reg} is on"))
        return out

    # -- heartbeat (B7) --------------------------------------------------------------------
    def heartbeat_needs_reset(self) -> bool:
        hb = as_int(self.t.get(self.inv, "res125", "Heartbeat"))
        return hb is not None and 0 < hb <= self.s.inverter_heartbeat_count_limit

    async def reset_heartbeat(self) -> None:
        # The inverter counts down every 100 ms, so the read-back may already be a few lower.
        await self.write(
            self.inv, "res125", "Heartbeat", self.s.initial_inverter_heartbeat_count, tol=10
        )

    def heartbeat_fault(self, energised_for_s: float) -> Fault | None:
        warn = self.s.inverter_heartbeat_warning_time
        sample = self.t.sample(self.inv, "res125", "Heartbeat")
        if sample is None or as_int(sample.value) is None:
            if energised_for_s > warn:
                return Fault("heartbeat_lost", f"no inverter Heartbeat reading for {warn:g} s")
            return None
        if as_int(sample.value) == 0:
            return Fault("heartbeat_lost", "inverter Heartbeat counted down to 0")
        age = self.t.age(self.inv, "res125", "Heartbeat") or 0.0
        if age > warn:
            return Fault(
                "heartbeat_lost", f"no inverter Heartbeat reading for {age:.0f} s (> {warn:g} s)"
            )
        return None

    def limit_points(self) -> set[tuple[str, str, str]]:
        return super().limit_points()

    def inverter_energised(self) -> dict[str, Any]:
        mode = as_int(self.t.get(self.inv, "res125", "OpMode"))
        cmd = self.t.number(self.inv, "res125", "MaxPowerCommand")
        return {
            "inverter_opmode": mode,
            "inverter_command": cmd,
            "inverter_exporting": mode in (1, 2) and bool(cmd),
        }


PROFILE_CLASSES: dict[str, type[Profile]] = {
    "sunspec_704": SunSpec704Profile,
    "sunspec_123": SunSpec123Profile,
    "rhombus_res125": RhombusRes125Profile,
}


def profile_class(settings: ControllerSettings) -> type[Profile]:
    """The configured profile class: `profile_class` (a user subclass) or a built-in one."""
    if settings.profile_class:
        mod_name, _, cls_name = settings.profile_class.partition(":")
        cls = getattr(importlib.import_module(mod_name), cls_name)
        if not (isinstance(cls, type) and issubclass(cls, Profile)):
            raise TypeError(f"profile_class {settings.profile_class!r} is not a Profile subclass")
        return cls
    return PROFILE_CLASSES[settings.profile]
