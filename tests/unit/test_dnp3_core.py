"""The pure parts of edge/dnp3: point map, [dnp3] section, control mapping, master watch,
site image, CROB decoding. No sockets, no broker."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pytest
from dnp3.core.enums import CommandStatus, ControlCode, OperationType, TripCloseCode

from edge.config.errors import ConfigError
from edge.config.site import parse_site
from edge.dnp3.commands import Answer, ControlMap, Send, reply_status
from edge.dnp3.config import bundled_pointmap
from edge.dnp3.image import SiteImage
from edge.dnp3.outstation import crob_on
from edge.dnp3.pointmap import PointMapError, load_pointmap
from edge.dnp3.watch import MasterWatch
from edge.mqtt import jsonutil
from edge.mqtt.topics import Topics

PM = bundled_pointmap()
T = Topics("s1")


# -- point map ------------------------------------------------------------------------------
def test_bundled_map_covers_the_mesa_ess_list() -> None:
    names = {p.name for p in (*PM.binary_inputs, *PM.analog_inputs)}
    assert {"soc", "battery_w", "charge_limit_w", "alarm_any", "battery_comm_ok"} <= names
    outs = {p.name: p for p in (*PM.binary_outputs, *PM.analog_outputs)}
    assert outs["start_stop"].sbo is True
    for n in ("volt_var_enable", "volt_watt_enable", "freq_watt_enable", "power_factor_enable"):
        assert outs[n].action.startswith("grid:")
    assert outs["active_power_limit_enable"].action == "limit"
    assert outs["active_power_limit_w"].param == "limit.power_w"
    assert PM.analog_output(1) is not None and PM.analog_output(1).max == 100  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ('[[binary_input]]\nindex = 0\nname = "a"\nsource = "state:x"\n'
         '[[binary_input]]\nindex = 0\nname = "b"\nsource = "state:y"', "binary_input[1].index"),
        ('[[binary_input]]\nindex = 0\nname = "a"\nsource = "ctl:soc"', "binary_input[0].source"),
        ('[[analog_input]]\nindex = 0\nname = "a"\nsource = "ctl:soc"\ncolour = 1',
         "analog_input[0].colour"),
        ('[[analog_input]]\nindex = 0\nname = "a"\nsource = "ctl:soc"\nscale = 0',
         "analog_input[0].scale"),
        ('[[binary_output]]\nindex = 0\nname = "a"\naction = "explode"', "binary_output[0].action"),
        ('[[analog_output]]\nindex = 0\nname = "a"\naction = "grid_support"\nmin = 5\nmax = 1',
         "analog_output[0].min"),
        ('[[analog_output]]\nindex = 0\nname = "a"\naction = "grid:freq_watt.k_sideways"',
         "analog_output[0].action"),
        ('[[analog_output]]\nindex = 0\nname = "a"\naction = "grid:freq_watt.points.0.x"',
         "analog_output[0].action"),
        ('[[binary_output]]\nindex = 0\nname = "a"\naction = "grid:smoothie"',
         "binary_output[0].action"),
        ('[[analog_input]]\nindex = -1\nname = "a"\nsource = "ctl:soc"', "analog_input[0].index"),
        ("[[gadgets]]\nindex = 0", "gadgets"),
        ("not toml [", "not valid TOML"),
    ],
)  # fmt: skip
def test_bad_point_maps_name_the_key(doc: str, where: str) -> None:
    with pytest.raises(PointMapError) as err:
        load_pointmap(doc, "m.toml")
    assert str(err.value).startswith(f"m.toml: {where}"), err.value


# -- [dnp3] ---------------------------------------------------------------------------------
def _site(dnp3: dict[str, Any]) -> Any:
    return parse_site({"site": {"id": "s1"}, "dnp3": dnp3}).section("dnp3")


def test_section_defaults_are_off_and_conservative() -> None:
    assert parse_site({"site": {"id": "s1"}}).section("dnp3") is None
    cfg = _site({})
    assert cfg.enabled is False and cfg.fallback == "hold" and cfg.unsolicited is False
    assert cfg.host == "127.0.0.1" and cfg.event_buffer == 200
    assert cfg.points.binary_inputs == PM.binary_inputs


@pytest.mark.parametrize(
    ("dnp3", "key"),
    [
        ({"master_address": 10}, "dnp3.master_address"),
        ({"master_address": 0}, "dnp3.master_address"),
        ({"outstation_address": 65520}, "dnp3.outstation_address"),
        ({"fallback": "discharge"}, "dnp3.fallback"),
        ({"soc_bands": [20, 10]}, "dnp3.soc_bands"),
        ({"event_buffer": 0}, "dnp3.event_buffer"),
        ({"pointmap": "/nonexistent/points.toml"}, "dnp3.pointmap"),
        ({"colour": "red"}, "dnp3.colour"),
    ],
)
def test_bad_section_is_a_config_error_naming_the_key(dnp3: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        _site(dnp3)
    assert any(k == key for k, _ in err.value.problems), err.value.problems


def test_section_reads_a_custom_point_map(tmp_path: Path) -> None:
    p = tmp_path / "m.toml"
    p.write_text('[[binary_output]]\nindex = 3\nname = "go"\naction = "hold"\n')
    cfg = _site({"pointmap": str(p)})
    assert [b.name for b in cfg.points.binary_outputs] == ["go"]
    p.write_text('[[binary_output]]\nindex = 3\nname = "go"\naction = "fly"\n')
    with pytest.raises(ConfigError, match="binary_output"):
        _site({"pointmap": str(p)})


# -- controls -------------------------------------------------------------------------------
NOW = 1_800_000_000.0


def _controls(remote: bool = True) -> ControlMap:
    return ControlMap(PM, remote, lambda: NOW)


def test_remote_control_off_answers_local() -> None:
    c = _controls(remote=False)
    d = c.binary(3, True, "direct")
    assert isinstance(d, Answer) and d.status == CommandStatus.LOCAL


def test_start_stop_requires_select_before_operate() -> None:
    c = _controls()
    assert c.binary(0, True, "direct") == Answer(
        CommandStatus.NOT_SUPPORTED, "start_stop: select-before-operate required"
    )
    assert isinstance(c.binary(0, True, "select"), Answer)  # validated, nothing sent
    assert c.binary(0, True, "operate") == Send("start", {}, None)
    assert c.binary(0, False, "operate") == Send("stop", {}, "")


def test_unmapped_points_are_not_supported() -> None:
    c = _controls()
    for d in (c.binary(99, True, "direct"), c.analog(99, 5, "direct")):
        assert isinstance(d, Answer) and d.status == CommandStatus.NOT_SUPPORTED
    assert isinstance(c.binary(1, None, "direct"), Answer)  # NUL control code


def test_active_power_limit_becomes_cmd_limit() -> None:
    c = _controls()
    # enabled before a value is written: refused, nothing enabled
    d = c.binary(5, True, "direct")
    assert isinstance(d, Answer) and d.status == CommandStatus.FORMAT_ERROR
    c.commit(d, d.status)
    assert c.limit_on is False
    # a value while disabled is only stored
    d = c.analog(4, 3000, "direct")
    assert d == Answer(
        CommandStatus.SUCCESS, "active_power_limit_w = 3000 W", {"limit.power_w": 3000}
    )
    c.commit(d, d.status)
    on = c.binary(5, True, "direct")
    assert on == Send("limit", {"charge_w": 3000, "discharge_w": 3000}, None, {}, True)
    c.commit(on, CommandStatus.SUCCESS)
    # enabled: a new value is sent at once; a refused one stores nothing
    d = c.analog(4, 2000, "direct")
    assert d == Send(
        "limit", {"charge_w": 2000, "discharge_w": 2000}, None, {"limit.power_w": 2000}, True
    )
    c.commit(d, CommandStatus.OUT_OF_RANGE)
    assert c.params["limit.power_w"] == 3000
    for bad in (-1, 10_000_001, math.nan):
        d = c.analog(4, bad, "direct")
        assert isinstance(d, Answer) and d.status == CommandStatus.OUT_OF_RANGE, bad
    off = c.binary(5, False, "direct")
    assert off == Send("limit", {"charge_w": None, "discharge_w": None}, None, {}, False)
    c.commit(off, CommandStatus.SUCCESS)
    assert c.limit_on is False


GRID = {"volt_var": {"enabled": False, "params": {"points": [[92, 44], [98, 0], [102, 0]]}}}


def test_grid_controls_become_cmd_grid_requests() -> None:
    c = ControlMap(PM, True, lambda: NOW, lambda: GRID)
    assert c.binary(8, True, "direct") == Send(
        "grid", {"function": "freq_watt", "params": {"enabled": True}}, None
    )
    assert c.binary(9, False, "direct") == Send(
        "grid", {"function": "pf", "params": {"enabled": False}}, None
    )
    assert c.analog(22, 40, "direct") == Send(
        "grid", {"function": "freq_watt", "params": {"k_over": 0.04}}, None
    )
    assert isinstance(c.analog(22, 40, "select"), Answer)  # validated, nothing sent
    # one coordinate of one curve point: the whole held curve is sent, that point replaced
    d = c.analog(8, 965, "direct")
    assert d == Send(
        "grid",
        {"function": "volt_var", "params": {"points": [[92, 44], [96.5, 0], [102, 0]]}},
        None,
    )
    assert GRID["volt_var"]["params"]["points"][1] == [98, 0]  # the held curve is not touched


def test_grid_curve_points_refused_before_the_controller() -> None:
    c = ControlMap(PM, True, lambda: NOW, lambda: GRID)
    d = c.analog(6, 2000, "direct")  # 200 % V: outside the map's [50, 150]
    assert isinstance(d, Answer) and d.status == CommandStatus.OUT_OF_RANGE
    assert "volt_var_pt0_v" in d.message
    d = c.analog(12, 1100, "direct")  # point 3: this curve has 3 points
    assert isinstance(d, Answer) and d.status == CommandStatus.OUT_OF_RANGE
    assert "has 3 points" in d.message
    d = _controls().analog(6, 900, "direct")  # no controller state yet: cannot edit a point
    assert isinstance(d, Answer) and d.status == CommandStatus.DOWNSTREAM_FAIL
    assert c.readback(PM.analog_output(9)) == 0.0  # type: ignore[arg-type]
    assert c.readback(PM.analog_output(22)) is None  # type: ignore[arg-type]


def test_parameters_are_range_checked_and_stored_only_on_success() -> None:
    c = _controls()
    d = c.analog(1, 150, "direct")
    assert isinstance(d, Answer) and d.status == CommandStatus.OUT_OF_RANGE
    assert "coordinated_target_soc" in d.message and "[0, 100]" in d.message
    d = c.analog(0, -20000, "direct")
    assert isinstance(d, Answer) and d.status == CommandStatus.SUCCESS
    assert c.params["charge_discharge.power_w"] == 0  # not before commit
    c.commit(d, d.status)
    assert c.params["charge_discharge.power_w"] == -20000
    # enable: charge (the controller takes a magnitude); a refusal changes nothing
    d = c.binary(1, True, "direct")
    assert d == Send("charge", {"power_w": 20000.0}, "charge_discharge", {})
    c.commit(d, CommandStatus.BLOCKED)
    assert c.enabled == ""
    c.commit(d, CommandStatus.SUCCESS)
    assert c.enabled == "charge_discharge"
    # while enabled a new setpoint is applied at once, and stored only when accepted
    d = c.analog(0, 7000, "direct")
    assert d == Send(
        "discharge", {"power_w": 7000.0}, "charge_discharge", {"charge_discharge.power_w": 7000.0}
    )
    c.commit(d, CommandStatus.OUT_OF_RANGE)
    assert c.params["charge_discharge.power_w"] == -20000
    assert c.binary(1, False, "direct") == Send("hold", {}, "")


def test_coordinated_mode_follows_the_mode_contract() -> None:
    c = _controls()
    d = c.binary(2, True, "direct")
    assert isinstance(d, Answer) and d.status == CommandStatus.FORMAT_ERROR
    for idx, v in ((1, 80), (2, 90), (3, 15000)):
        a = c.analog(idx, v, "direct")
        c.commit(a, a.status)
    d = c.binary(2, True, "direct")
    by = dt.datetime.fromtimestamp(NOW + 90 * 60, dt.UTC).isoformat(timespec="seconds")
    assert d == Send(
        "mode",
        {"mode": "soc_target", "params": {"target_soc": 80, "by": by, "max_power_w": 15000}},
        "coordinated",
        {},
    )
    assert dt.datetime.fromisoformat(by).utcoffset() == dt.timedelta(0)  # offset included


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ({"ok": True, "state": "charging"}, CommandStatus.SUCCESS),
        ({"ok": False, "error": {"code": "out_of_range"}}, CommandStatus.OUT_OF_RANGE),
        ({"ok": False, "error": {"code": "invalid_payload"}}, CommandStatus.FORMAT_ERROR),
        ({"ok": False, "error": {"code": "not_allowed_in_state"}}, CommandStatus.BLOCKED),
        ({"ok": False, "error": {"code": "fault_active"}}, CommandStatus.HARDWARE_ERROR),
        ({"ok": False, "error": {"code": "unknown_command"}}, CommandStatus.NOT_SUPPORTED),
        ({"ok": False, "error": {"code": "internal_error"}}, CommandStatus.DOWNSTREAM_FAIL),
        ({"ok": False, "error": "junk"}, CommandStatus.DOWNSTREAM_FAIL),
        (None, CommandStatus.DOWNSTREAM_FAIL),
    ],
)  # fmt: skip
def test_reply_status(reply: dict[str, Any] | None, status: CommandStatus) -> None:
    assert reply_status(reply)[0] == status


def test_crob_codes() -> None:
    assert crob_on(ControlCode.LATCH_ON) is True and crob_on(ControlCode.PULSE_ON) is True
    assert crob_on(ControlCode.LATCH_OFF) is False and crob_on(ControlCode.PULSE_OFF) is False
    assert crob_on(ControlCode.CLOSE_PULSE_ON) is True
    assert crob_on(ControlCode.TRIP_PULSE_ON) is False
    assert crob_on(ControlCode.NUL) is None
    clear = ControlCode.from_fields(
        op_type=OperationType.LATCH_ON, tcc=TripCloseCode.NUL, clear=True
    )
    assert crob_on(clear) is None


# -- master watch ---------------------------------------------------------------------------
def test_watch_falls_back_only_when_the_master_commanded() -> None:
    w = MasterWatch(timeout_s=10)
    w.seen(0)
    assert not w.due(100)  # a monitoring-only master: never armed
    w.control_accepted(100)
    assert not w.due(110) and w.due(110.5)
    w.done(110.5, "no_reply", "timeout")
    assert not w.active and "retrying" in w.reason
    assert not w.due(112) and w.due(115.5)  # retried after retry_s
    w.done(115.5, "ok")
    assert w.active and w.reason == "DNP3 master silent for 16 s: fallback hold"
    assert not w.due(200)
    w.seen(300)
    assert not w.active and not w.due(1000)  # disarmed until the next control
    assert MasterWatch(timeout_s=1, fallback="none").due(1e9) is False
    # a refusal (site already stopped or in fault) ends the episode: no endless retries
    r = MasterWatch(timeout_s=1)
    r.control_accepted(0)
    r.done(2, "refused", "not_allowed_in_state: hold: state is stopped")
    assert r.active and "refused by the controller" in r.reason and not r.due(100)


# -- site image -----------------------------------------------------------------------------
def _image() -> SiteImage:
    return SiteImage(T, PM, (10.0, 20.0, 80.0, 90.0))


def _bi(name: str) -> Any:
    return next(p for p in PM.binary_inputs if p.name == name)


def _ai(name: str) -> Any:
    return next(p for p in PM.analog_inputs if p.name == name)


def test_image_maps_state_faults_and_points() -> None:
    im = _image()
    assert T.controller_state in im.subscriptions() and T.status("battery") in im.subscriptions()
    assert T.point("battery", 802, "SoC") in im.subscriptions()
    assert im.binary(_bi("state_charging")) is None  # nothing known yet
    state = {
        "state": "charging",
        "soc": 42.0,
        "faults": [{"code": "battery_alarm"}],
        "setpoint": {"requested_w": 5000, "applied_w": 4800},
    }
    assert im.on_message(T.controller_state, jsonutil.dumps(state).encode())
    im.on_message(T.point("battery", 802, "SoC"), b"85.5")
    im.on_message(T.status("battery"), b"online")
    assert im.binary(_bi("state_charging")) is True and im.binary(_bi("state_holding")) is False
    assert im.binary(_bi("alarm_any")) is True and im.binary(_bi("alarm_battery")) is True
    assert im.binary(_bi("alarm_inverter")) is False
    assert im.analog(_ai("setpoint_applied_w")) == 4800
    assert im.analog(_ai("state_code")) == PM.state_codes.index("charging")
    assert im.analog(_ai("soc")) == 85.5 and im.analog(_ai("soc_band")) == 3
    im.on_message(T.point("battery", 802, "SoC"), b"null")
    assert im.analog(_ai("soc")) is None
    im.on_message(T.point("battery", 802, "SoC"), b"95")
    im.on_message(T.status("battery"), b"offline")
    assert im.analog(_ai("soc")) is None and im.binary(_bi("battery_comm_ok")) is False
    im.on_message(T.controller_status, b"offline")
    assert im.binary(_bi("state_charging")) is None  # stale state is not served as live
    assert im.on_message(T.controller_state, b"{not json") is False


def test_image_maps_grid_enabled_flags() -> None:
    im = _image()
    im.on_message(T.controller_state, jsonutil.dumps({"state": "holding"}).encode())
    assert im.binary(_bi("freq_watt_enabled")) is None  # a controller without grid support
    grid = {"functions": {"freq_watt": {"enabled": True}, "volt_var": {"enabled": False}}}
    im.on_message(T.controller_state, jsonutil.dumps({"state": "holding", "grid": grid}).encode())
    assert im.binary(_bi("freq_watt_enabled")) is True
    assert im.binary(_bi("volt_var_enabled")) is False
    assert im.binary(_bi("pf_enabled")) is None  # not reported: not known
    # a cmd/grid reply is newer than the state held, until the next state message
    im.grid_reply = {"functions": {"freq_watt": {"enabled": False}}}
    assert im.binary(_bi("freq_watt_enabled")) is False
    im.on_message(T.controller_state, jsonutil.dumps({"state": "holding", "grid": grid}).encode())
    assert im.grid_reply is None and im.binary(_bi("freq_watt_enabled")) is True
    im.on_message(T.controller_status, b"offline")
    assert im.binary(_bi("freq_watt_enabled")) is None


def test_service_runs_only_when_enabled() -> None:
    from edge.dnp3.service import Dnp3Service, make_services
    from edge.services import service_factories

    assert "dnp3" in service_factories()
    assert make_services(parse_site({"site": {"id": "s1"}})) == []
    assert make_services(parse_site({"site": {"id": "s1"}, "dnp3": {}})) == []
    on = make_services(parse_site({"site": {"id": "s1"}, "dnp3": {"enabled": True}}))
    assert len(on) == 1 and isinstance(on[0], Dnp3Service)
