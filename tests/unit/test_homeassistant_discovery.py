"""Every discovery config against Home Assistant's documented options for its platform
(tests/ha_schema.py), and every template rendered as Home Assistant renders it."""

from __future__ import annotations

import json
from typing import Any

import pytest
import voluptuous as vol

from edge.config import ConfigError, parse_site
from edge.homeassistant.config import MODES, HomeAssistantSchema
from edge.homeassistant.discovery import Discovery
from edge.mqtt.rpc import RESERVED_KEYS
from edge.mqtt.topics import Topics
from tests.ha_schema import render, validate

T = Topics("demo")
STATE = {
    "state": "charging",
    "setpoint": {"requested_w": 5000, "applied_w": 4800},
    "limits": {"charge_w": 4800, "discharge_w": 6000, "source": "x"},
    "soc": 54.2,
    "faults": [{"code": "battery_alarm", "detail": "Evt1 bit 3"}],
    "reason": "command charge",
    "mode": {
        "name": "peak_shaving",
        "params": {"target_w": 50000},
        "since": 1.0,
        "source": "command",
    },
    "why": "peak_shaving: import 52.1 kW > target 50 kW; bound by: none",
    "ts": 1.0,
}


def configs(**section: Any) -> dict[str, dict[str, Any]]:
    return Discovery("demo", HomeAssistantSchema().load(section)).configs()


def by_object(cfgs: dict[str, dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {t.split("/")[3]: (t, c) for t, c in cfgs.items()}


def test_every_config_is_valid_for_its_platform() -> None:
    cfgs = configs(mode_params={"peak_shaving": {"target_w": 50000}})
    platforms = {t.split("/")[1] for t in cfgs}
    assert platforms == {"sensor", "binary_sensor", "button", "number", "select"}
    unique = [c["unique_id"] for c in cfgs.values()]
    assert len(unique) == len(set(unique))
    for topic, config in cfgs.items():
        validate(topic, json.loads(json.dumps(config)))  # what goes on the wire


def test_the_schema_catches_what_home_assistant_refuses() -> None:
    (topic, good), *_ = [(t, c) for t, c in configs().items() if "/number/" in t]
    for broken in (
        {**good, "min": 10, "max": 1},
        {**good, "mode": "dial"},
        {**good, "comand_topic": "x"},
        {**good, "command_topic": "bess/+/x"},
        {**good, "unit_of_measurement": "Wh"},
        {k: v for k, v in good.items() if k != "command_topic"},
        {**good, "value_template": "{{ value_json.state "},
    ):
        with pytest.raises(vol.Invalid):
            validate(topic, broken)


def test_state_templates_read_the_tree_as_documented() -> None:
    objs = by_object(configs())
    state = json.dumps(STATE)

    def rendered(obj: str, payload: str) -> str:
        _t, c = objs[obj]
        return render(c["value_template"], value=payload, value_json=json.loads(payload))

    assert objs["state"][1]["state_topic"] == T.controller_state
    assert rendered("state", state) == "charging"
    assert rendered("mode", state) == "peak_shaving"
    assert rendered("mode_select", state) == "peak_shaving"
    assert rendered("faults", state) == "1"
    assert rendered("fault", state) == "ON"
    assert rendered("fault", json.dumps({**STATE, "faults": []})) == "OFF"
    assert rendered("charge_w", state) == "5000"
    assert rendered("discharge_w", state) == "0"
    assert rendered("setpoint_w", state) == "4800"
    assert rendered("why", state).startswith("peak_shaving:")
    # A controller without modes yet: the mode reads manual, the explanation empty.
    legacy = json.dumps({k: v for k, v in STATE.items() if k not in ("mode", "why")})
    assert rendered("mode", legacy) == "manual" and rendered("why", legacy) == ""
    # Points: a JSON number, or null (Home Assistant shows "unknown" for "None").
    assert objs["soc"][1]["state_topic"] == T.point("battery", 802, "SoC")
    assert rendered("soc", "55.5") == "55.5" and rendered("soc", "null") == "None"
    assert objs["soc"][1]["availability"][0]["topic"] == T.status("battery")
    assert objs["grid_w"][1]["availability"][0]["topic"] == T.status("meter")
    online = objs["battery_online"][1]
    assert (online["state_topic"], online["payload_on"]) == (T.status("battery"), "online")
    last = objs["last_command"][1]
    ok, refused = (
        '{"ok": true, "state": "holding"}',
        '{"ok": false, "error": {"code": "fault_active"}}',
    )
    assert render(last["value_template"], value_json=json.loads(ok)) == "accepted"
    assert render(last["value_template"], value_json=json.loads(refused)) == "fault_active"


def _request(config: dict[str, Any], **variables: Any) -> dict[str, Any]:
    text = config.get("payload_press") or render(config["command_template"], **variables)
    body = json.loads(text)
    assert body.pop("response_topic") == f"{T.reply_base('homeassistant')}/cmd"
    assert body.pop("correlation_id").startswith("ha-")
    assert not set(body) & set(RESERVED_KEYS)
    return body


def test_commands_are_controller_requests_with_a_reply_address() -> None:
    objs = by_object(configs(mode_params={"peak_shaving": {"target_w": 50000}}))
    start, stop = objs["start"][1], objs["stop"][1]
    assert start["command_topic"] == T.controller_cmd("start") and _request(start) == {}
    assert stop["command_topic"] == T.controller_cmd("stop") and _request(stop) == {}
    charge = objs["charge_w"][1]
    assert charge["command_topic"] == T.controller_cmd("charge")
    assert _request(charge, value=5000.0) == {"power_w": 5000.0}
    assert objs["discharge_w"][1]["command_topic"] == T.controller_cmd("discharge")
    select = objs["mode_select"][1]
    assert select["command_topic"] == T.controller_cmd("mode")
    assert select["options"] == list(MODES)
    assert _request(select, value="peak_shaving") == {
        "mode": "peak_shaving",
        "params": {"target_w": 50000},
    }
    for mode in MODES:
        assert _request(select, value=mode)["mode"] == mode


def test_points_prefix_and_node_are_configurable() -> None:
    cfgs = configs(prefix="ha", node_id="site_7", points={"soc": "bms/802/SoC"})
    assert all(t.startswith("ha/") and t.split("/")[2] == "site_7" for t in cfgs)
    soc = by_object(cfgs)["soc"][1]
    assert soc["state_topic"] == T.point("bms", 802, "SoC")
    assert soc["availability"][0]["topic"] == T.status("bms")


def test_the_section_is_off_by_default_and_refuses_bad_values() -> None:
    assert parse_site({"site": {"id": "s1"}}).section("homeassistant") is None
    for bad, key in [
        ({"points": {"soc": "no-slash"}}, "homeassistant.points"),
        ({"points": {"temperature": "a/1/T"}}, "homeassistant.points"),
        ({"mode_params": {"turbo": {}}}, "homeassistant.mode_params"),
        ({"max_charge_w": 0}, "homeassistant.max_charge_w"),
        ({"prefix": "a/b"}, "homeassistant.prefix"),
        ({"devices": ["Bad"]}, "homeassistant.devices"),
    ]:
        with pytest.raises(ConfigError) as exc:
            parse_site({"site": {"id": "s1"}, "homeassistant": bad})
        assert key in str(exc.value), str(exc.value)
