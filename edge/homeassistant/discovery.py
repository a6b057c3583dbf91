"""The retained discovery configs, one per entity (topics.md, "Home Assistant"). Pure.

Entities read the existing tree (points, `status`, the controller's `state`) and command the
controller through its own command topics: Home Assistant publishes the request itself, with
`response_topic`/`correlation_id` in the body (the MQTT 3.1.1 form of topics.md,
"Request/response"), and the reply lands on `{root}/reply/homeassistant/cmd`, shown by the
`last_command` sensor. Nothing here proxies or re-validates a command: the controller does.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from edge.homeassistant.config import MODES, HomeAssistantConfig
from edge.mqtt.topics import Topics, ha_discovery

try:
    __version__ = version("bess-edge")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0"

REPLY_CLIENT = "homeassistant"
CONTROLLER = "controller"

Config = dict[str, Any]


def reply_topic(topics: Topics) -> str:
    return f"{topics.reply_base(REPLY_CLIENT)}/cmd"


def _request(reply: str, tag: str, body: str = "") -> str:
    """A request body as text; `body` is the command's own fields (JSON members, no braces)."""
    envelope = f'"response_topic": {json.dumps(reply)}, "correlation_id": "ha-{tag}"'
    return "{" + (f"{body}, " if body else "") + envelope + "}"


class Discovery:
    def __init__(self, site: str, cfg: HomeAssistantConfig) -> None:
        self.t = Topics(site)
        self.cfg = cfg
        self.node = cfg.node_id or f"bess_{site}"
        self.reply = reply_topic(self.t)
        self.device = {
            "identifiers": [self.node],
            "name": cfg.name or f"BESS {site}",
            "manufacturer": "bess-edge",
            "model": "BESS edge controller",
            "sw_version": __version__,
        }

    def _available(self, device: str) -> list[dict[str, str]]:
        return [
            {
                "topic": self.t.status(device),
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ]

    def _entity(
        self, object_id: str, name: str, available_from: str | None, **extra: Any
    ) -> Config:
        c: Config = {
            "name": name,
            "unique_id": f"{self.node}_{object_id}",
            "device": self.device,
            "origin": {"name": "bess-edge", "sw_version": __version__},
            "qos": 1,
            **extra,
        }
        if available_from is not None:
            c["availability"] = self._available(available_from)
        return c

    def configs(self) -> dict[str, Config]:
        """Discovery topic -> config, for every entity."""
        out: dict[str, Config] = {}

        def add(component: str, object_id: str, config: Config) -> None:
            out[ha_discovery(component, self.node, object_id, self.cfg.prefix)] = config

        state = self.t.controller_state
        pts = self.cfg.points
        for key, name, dc, unit in (
            ("soc", "State of charge", "battery", "%"),
            ("battery_w", "Battery power", "power", "W"),
            ("grid_w", "Grid power", "power", "W"),
        ):
            device, _, suffix = pts[key].partition("/")
            topic = f"{self.t.device(device)}/{suffix}"
            add(
                "sensor",
                key,
                self._entity(
                    key,
                    name,
                    device,
                    state_topic=topic,
                    value_template="{{ value_json }}",
                    device_class=dc,
                    state_class="measurement",
                    unit_of_measurement=unit,
                ),
            )
        ctl = CONTROLLER
        add(
            "sensor",
            "state",
            self._entity(
                "state",
                "Controller state",
                ctl,
                state_topic=state,
                value_template="{{ value_json.state }}",
                icon="mdi:battery-sync",
            ),
        )
        add(
            "sensor",
            "mode",
            self._entity(
                "mode", "Active mode", ctl, state_topic=state, value_template=_MODE_TEMPLATE
            ),
        )
        add(
            "sensor",
            "why",
            self._entity(
                "why",
                "Mode reasoning",
                ctl,
                state_topic=state,
                value_template="{{ value_json.why if value_json.why is defined else '' }}",
                entity_category="diagnostic",
            ),
        )
        add(
            "sensor",
            "setpoint_w",
            self._entity(
                "setpoint_w",
                "Applied setpoint",
                ctl,
                state_topic=state,
                value_template="{{ value_json.setpoint.applied_w }}",
                device_class="power",
                state_class="measurement",
                unit_of_measurement="W",
            ),
        )
        add(
            "sensor",
            "faults",
            self._entity(
                "faults",
                "Active faults",
                ctl,
                state_topic=state,
                value_template="{{ value_json.faults | length }}",
                state_class="measurement",
                json_attributes_topic=state,
                json_attributes_template="{{ {'faults': value_json.faults} | tojson }}",
            ),
        )
        add(
            "binary_sensor",
            "fault",
            self._entity(
                "fault",
                "Fault",
                ctl,
                state_topic=state,
                value_template="{{ 'ON' if value_json.faults else 'OFF' }}",
                payload_on="ON",
                payload_off="OFF",
                device_class="problem",
            ),
        )
        add(
            "sensor",
            "last_command",
            self._entity(
                "last_command",
                "Last command result",
                None,
                state_topic=self.reply,
                json_attributes_topic=self.reply,
                value_template="{{ 'accepted' if value_json.ok else value_json.error.code }}",
                entity_category="diagnostic",
            ),
        )
        for dev in (*self.cfg.devices, ctl):
            add(
                "binary_sensor",
                f"{dev}_online",
                self._entity(
                    f"{dev}_online",
                    f"{dev.capitalize()} connection",
                    None,
                    state_topic=self.t.status(dev),
                    payload_on="online",
                    payload_off="offline",
                    device_class="connectivity",
                    entity_category="diagnostic",
                ),
            )
        for cmd, icon in (("start", "mdi:play"), ("stop", "mdi:stop")):
            add(
                "button",
                cmd,
                self._entity(
                    cmd,
                    cmd.capitalize(),
                    ctl,
                    command_topic=self.t.controller_cmd(cmd),
                    payload_press=_request(self.reply, cmd),
                    icon=icon,
                ),
            )
        add(
            "select",
            "mode_select",
            self._entity(
                "mode_select",
                "Operating mode",
                ctl,
                command_topic=self.t.controller_cmd("mode"),
                command_template=self._mode_cmd(),
                state_topic=state,
                value_template=_MODE_TEMPLATE,
                options=list(MODES),
            ),
        )
        for cmd, limit in (
            ("charge", self.cfg.max_charge_w),
            ("discharge", self.cfg.max_discharge_w),
        ):
            state_name = {"charge": "charging", "discharge": "discharging"}[cmd]
            add(
                "number",
                f"{cmd}_w",
                self._entity(
                    f"{cmd}_w",
                    f"{cmd.capitalize()} power",
                    ctl,
                    command_topic=self.t.controller_cmd(cmd),
                    command_template=_request(self.reply, cmd, '"power_w": {{ value }}'),
                    state_topic=state,
                    value_template="{{ value_json.setpoint.requested_w if value_json.state == "
                    f"'{state_name}' else 0 }}}}",
                    min=0,
                    max=limit,
                    step=100,
                    mode="box",
                    unit_of_measurement="W",
                    device_class="power",
                ),
            )
        return out

    def _mode_cmd(self) -> str:
        """Each option's request, with the mode's parameters from the site file."""
        parts = []
        for i, mode in enumerate(MODES):
            params = json.dumps(self.cfg.mode_params.get(mode, {}), sort_keys=True)
            body = _request(self.reply, "mode", f'"mode": "{mode}", "params": {params}')
            parts.append(("{% if" if i == 0 else "{% elif") + f" value == '{mode}' %}}{body}")
        return "".join(parts) + "{% endif %}"


_MODE_TEMPLATE = (
    "{{ value_json.mode.name if value_json.mode is defined and value_json.mode else 'manual' }}"
)
