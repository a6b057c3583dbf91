"""`[controller]`: the BESS controller.

Every option of the original BESS Agent (seeds/bess-agent-readme.md) is here under its original
name with its *documented* default (field notes B8: documented values are the real ones), plus
what an MQTT-native controller needs: device names, the device profile, power limits in W
(field notes B6: one unit everywhere), ramp, setpoint lease and timeouts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from dataclasses import fields as dc_fields
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from edge.controller.errors import Refused
from edge.controller.grid.settings import GridSettings, parse_grid
from edge.controller.schedule import Schedule, parse_schedule
from edge.families import names as family_names
from edge.mqtt.topics import NAME_RE, RESERVED_NAMES

PROFILES = family_names()
COMMAND_MODES = ("POWER", "CURRENT")


@dataclass(frozen=True)
class ControllerSettings:
    """Validated `[controller]` section. All powers in W, all times in s."""

    # -- devices and profile ---------------------------------------------------------------
    battery: str = "battery"
    inverter: str = "inverter"
    meter: str | None = "meter"
    pv: str | None = None  # a PV inverter whose 701/W or 103/W the modes may read
    profile: str = "sunspec_704"
    profile_class: str | None = None  # "package.module:Class", a user subclass of a profile
    # -- original agent options (documented defaults) --------------------------------------
    tz: str = "UTC"
    actuator_vip: str = "platform.actuator"
    soc_monitor_max_time: float = 30.0
    soc_high_limit: float = 90.0
    soc_low_limit: float = 10.0
    soc_recovered_level: float = 20.0
    backup_reserve_soc: float = 0.0  # no discharge at or below this SoC, under every mode
    soc_monitor_interval: float = 1.0
    soc_recovery_check_interval: float = 1.0
    soc_low_recovery_charge_command: float = 10.0
    system_fault_check_interval: float = 1.0
    wait_connecting_interval: float = 1.0
    strict_power_sign: bool = True
    user_command_mode: str = "POWER"
    system_state_publish_topic: str = "record/BESS/SystemState"
    # inverter options of the original
    inverter_heartbeat_check_interval: float = 50.0
    charge_sign: int = -1
    # Rhombus RES-125 options of the original
    inverter_heartbeat_warning_time: float = 60.0
    initial_inverter_heartbeat_count: int = 931
    inverter_heartbeat_count_limit: int = 750
    security_code_value: int = 125
    max_inverter_command: float = 125.0
    inverter_command_mode: str = "POWER"
    # -- new: limits, ramp, lease, timeouts ------------------------------------------------
    max_charge_w: float | None = None
    max_discharge_w: float | None = None
    inverter_rating_w: float | None = None
    rhombus_command_unit_w: float = 1000.0  # W per MaxPowerCommand unit in POWER mode (kW)
    ramp_w_per_s: float = 0.0  # 0: no ramp
    ramp_interval_s: float = 1.0
    lease_s: float = 30.0  # device revert timer written at start
    refresh_s: float = 10.0  # setpoint rewritten this often (< lease_s)
    write_timeout_s: float = 2.0
    connect_timeout_s: float = 60.0
    restart_settle_s: float = 3.0
    on_restart: str = "stop"  # "stop": run the stop sequence if devices were found energised
    state_publish_s: float = 5.0
    tick_s: float = 0.1
    # -- operating modes (README "Operating modes") ----------------------------------------
    control_tick_s: float = 1.0  # the active mode runs this often, on the latest meter data
    meter_stale_s: float = 5.0  # meter data older than this: meter modes fall back to hold
    meter_frozen_s: float = 10.0  # meter W stuck this long while the battery moved: hold; 0 off
    schedule: Schedule | None = None  # `[controller.schedule]`
    grid: GridSettings = field(default_factory=GridSettings)  # `[controller.grid]`

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dc_fields(cls)]


_D = ControllerSettings()


def _pos(**kw: Any) -> validate.Range:
    return validate.Range(min=0, min_inclusive=False, **kw)


def _pct() -> validate.Range:
    return validate.Range(0, 100)


def _device_name(value: str) -> None:
    if not NAME_RE.match(value) or value in RESERVED_NAMES:
        raise ValidationError(f"{value!r} must match {NAME_RE.pattern} and not be reserved")


class ControllerSchema(Schema):
    battery = fields.String(load_default=_D.battery, validate=_device_name)
    inverter = fields.String(load_default=_D.inverter, validate=_device_name)
    meter = fields.String(load_default=_D.meter, allow_none=True, validate=_device_name)
    pv = fields.String(load_default=None, allow_none=True, validate=_device_name)
    profile = fields.String(load_default=_D.profile, validate=validate.OneOf(PROFILES))
    profile_class = fields.String(
        load_default=None,
        validate=validate.Regexp(r"^[\w.]+:\w+$", error="must be 'package.module:ClassName'"),
    )
    tz = fields.String(load_default=_D.tz)
    actuator_vip = fields.String(load_default=_D.actuator_vip)
    soc_monitor_max_time = fields.Float(load_default=_D.soc_monitor_max_time, validate=_pos())
    soc_high_limit = fields.Float(load_default=_D.soc_high_limit, validate=_pct())
    soc_low_limit = fields.Float(load_default=_D.soc_low_limit, validate=_pct())
    soc_recovered_level = fields.Float(load_default=_D.soc_recovered_level, validate=_pct())
    backup_reserve_soc = fields.Float(load_default=_D.backup_reserve_soc, validate=_pct())
    soc_monitor_interval = fields.Float(load_default=_D.soc_monitor_interval, validate=_pos())
    soc_recovery_check_interval = fields.Float(
        load_default=_D.soc_recovery_check_interval, validate=_pos()
    )
    soc_low_recovery_charge_command = fields.Float(
        load_default=_D.soc_low_recovery_charge_command, validate=_pos()
    )
    system_fault_check_interval = fields.Float(
        load_default=_D.system_fault_check_interval, validate=_pos()
    )
    wait_connecting_interval = fields.Float(
        load_default=_D.wait_connecting_interval, validate=_pos()
    )
    strict_power_sign = fields.Boolean(load_default=_D.strict_power_sign)
    user_command_mode = fields.String(
        load_default=_D.user_command_mode, validate=validate.OneOf(COMMAND_MODES)
    )
    system_state_publish_topic = fields.String(load_default=_D.system_state_publish_topic)
    inverter_heartbeat_check_interval = fields.Float(
        load_default=_D.inverter_heartbeat_check_interval, validate=_pos()
    )
    charge_sign = fields.Integer(load_default=_D.charge_sign, validate=validate.OneOf((-1, 1)))
    inverter_heartbeat_warning_time = fields.Float(
        load_default=_D.inverter_heartbeat_warning_time, validate=_pos()
    )
    initial_inverter_heartbeat_count = fields.Integer(
        load_default=_D.initial_inverter_heartbeat_count, validate=validate.Range(1, 65534)
    )
    inverter_heartbeat_count_limit = fields.Integer(
        load_default=_D.inverter_heartbeat_count_limit, validate=validate.Range(1, 65534)
    )
    security_code_value = fields.Integer(
        load_default=_D.security_code_value, validate=validate.Range(0, 65535)
    )
    max_inverter_command = fields.Float(load_default=_D.max_inverter_command, validate=_pos())
    inverter_command_mode = fields.String(
        load_default=_D.inverter_command_mode, validate=validate.OneOf(COMMAND_MODES)
    )
    max_charge_w = fields.Float(load_default=None, validate=validate.Range(min=0))
    max_discharge_w = fields.Float(load_default=None, validate=validate.Range(min=0))
    inverter_rating_w = fields.Float(load_default=None, validate=_pos())
    rhombus_command_unit_w = fields.Float(load_default=_D.rhombus_command_unit_w, validate=_pos())
    ramp_w_per_s = fields.Float(load_default=_D.ramp_w_per_s, validate=validate.Range(min=0))
    ramp_interval_s = fields.Float(load_default=_D.ramp_interval_s, validate=_pos())
    lease_s = fields.Float(load_default=_D.lease_s, validate=validate.Range(1, 86400))
    refresh_s = fields.Float(load_default=_D.refresh_s, validate=_pos())
    write_timeout_s = fields.Float(load_default=_D.write_timeout_s, validate=_pos(max=60))
    connect_timeout_s = fields.Float(load_default=_D.connect_timeout_s, validate=_pos(max=3600))
    restart_settle_s = fields.Float(
        load_default=_D.restart_settle_s, validate=validate.Range(0, 60)
    )
    on_restart = fields.String(
        load_default=_D.on_restart, validate=validate.OneOf(("stop", "report"))
    )
    state_publish_s = fields.Float(load_default=_D.state_publish_s, validate=_pos())
    tick_s = fields.Float(load_default=_D.tick_s, validate=_pos(max=1))
    control_tick_s = fields.Float(load_default=_D.control_tick_s, validate=_pos(max=1))
    meter_stale_s = fields.Float(load_default=_D.meter_stale_s, validate=_pos(max=3600))
    meter_frozen_s = fields.Float(load_default=_D.meter_frozen_s, validate=validate.Range(0, 3600))
    schedule = fields.Raw(load_default=None, allow_none=True)
    grid = fields.Raw(load_default=None, allow_none=True)

    @validates_schema
    def consistent(self, data: dict[str, Any], **_: Any) -> None:
        problems: dict[str, str] = {}
        low, rec, high = (
            data.get("soc_low_limit"),
            data.get("soc_recovered_level"),
            data.get("soc_high_limit"),
        )
        if None not in (low, rec, high) and not (low < rec < high):  # type: ignore[operator]
            problems["soc_recovered_level"] = (
                f"must lie strictly between soc_low_limit ({low}) and soc_high_limit ({high})"
            )
        reserve = data.get("backup_reserve_soc")
        if reserve is not None and high is not None and reserve >= high:
            problems["backup_reserve_soc"] = f"must be below soc_high_limit ({high})"
        lease, refresh = data.get("lease_s"), data.get("refresh_s")
        if lease is not None and refresh is not None and refresh >= lease:
            problems["refresh_s"] = (
                f"must be shorter than lease_s ({lease}) so the lease never lapses"
            )
        lim, init = (
            data.get("inverter_heartbeat_count_limit"),
            data.get("initial_inverter_heartbeat_count"),
        )
        if lim is not None and init is not None and lim >= init:
            problems["inverter_heartbeat_count_limit"] = (
                f"must be below initial_inverter_heartbeat_count ({init})"
            )
        if data.get("schedule") is not None:
            try:
                data["schedule"] = parse_schedule(data["schedule"], data.get("tz", _D.tz))
            except Refused as r:
                problems["schedule"] = r.message
        try:
            data["grid"] = parse_grid(data.get("grid"))
        except Refused as r:
            problems["grid"] = r.message
        names = [data.get("battery"), data.get("inverter"), data.get("meter"), data.get("pv")]
        named = [n for n in names if n]
        if len(set(named)) != len(named):
            problems["inverter"] = "battery, inverter and meter must be different devices"
        if problems:
            raise ValidationError(problems)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> ControllerSettings:
        return ControllerSettings(**data)


def section() -> fields.Field:
    """The site file's `[controller]` section, registered under `bess_edge.config`."""
    return fields.Nested(ControllerSchema, load_default=None)
