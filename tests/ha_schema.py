"""Home Assistant's MQTT discovery options, written with voluptuous (as Home Assistant writes its
own) from Home Assistant's documentation of the MQTT sensor, binary sensor, button, number and
select integrations and of MQTT discovery. Unknown keys are errors here (Home Assistant drops
them silently, which hides typos). Templates are rendered with jinja2 as Home Assistant does.
"""

from __future__ import annotations

import re
from typing import Any

import jinja2
import voluptuous as vol
from jinja2.sandbox import ImmutableSandboxedEnvironment

DISCOVERY_TOPIC = re.compile(
    r"^(?P<prefix>[^/#+]+)/(?P<component>[a-z_]+)/(?P<node_id>[a-zA-Z0-9_-]+)/"
    r"(?P<object_id>[a-zA-Z0-9_-]+)/config$"
)
TEMPLATES = jinja2.Environment()


def template(value: Any) -> str:
    """A Jinja template that compiles."""
    if not isinstance(value, str):
        raise vol.Invalid("template must be a string")
    try:
        TEMPLATES.parse(value)
    except jinja2.TemplateSyntaxError as exc:
        raise vol.Invalid(f"invalid template: {exc}") from None
    return value


def topic(value: Any) -> str:
    """A publish topic: no wildcards, not empty (valid_publish_topic)."""
    if not isinstance(value, str) or not value or "+" in value or "#" in value or "\0" in value:
        raise vol.Invalid(f"not a valid publish topic: {value!r}")
    return value


def sub_topic(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise vol.Invalid(f"not a valid subscribe topic: {value!r}")
    return value


QOS = vol.All(int, vol.In([0, 1, 2]))
DEVICE = vol.Schema(
    {
        vol.Optional("identifiers"): vol.Any(str, [str]),
        vol.Optional("connections"): [[str]],
        vol.Optional("configuration_url"): str,
        vol.Optional("manufacturer"): str,
        vol.Optional("model"): str,
        vol.Optional("model_id"): str,
        vol.Optional("name"): str,
        vol.Optional("hw_version"): str,
        vol.Optional("serial_number"): str,
        vol.Optional("suggested_area"): str,
        vol.Optional("sw_version"): str,
        vol.Optional("via_device"): str,
    }
)
ORIGIN = vol.Schema(
    {vol.Required("name"): str, vol.Optional("sw_version"): str, vol.Optional("support_url"): str}
)
AVAILABILITY = vol.Schema(
    {
        vol.Required("topic"): sub_topic,
        vol.Optional("payload_available", default="online"): str,
        vol.Optional("payload_not_available", default="offline"): str,
        vol.Optional("value_template"): template,
    }
)
ENTITY_CATEGORIES = ("config", "diagnostic")

# Options every MQTT entity accepts (the "availability", "device", "entity" sections).
COMMON: dict[Any, Any] = {
    vol.Optional("availability"): vol.All([AVAILABILITY], vol.Length(min=1)),
    vol.Optional("availability_mode", default="latest"): vol.In(["all", "any", "latest"]),
    vol.Optional("availability_template"): template,
    vol.Optional("availability_topic"): sub_topic,
    vol.Optional("payload_available"): str,
    vol.Optional("payload_not_available"): str,
    vol.Optional("device"): DEVICE,
    vol.Optional("origin"): ORIGIN,
    vol.Optional("enabled_by_default", default=True): bool,
    vol.Optional("encoding", default="utf-8"): str,
    vol.Optional("entity_category"): vol.In(ENTITY_CATEGORIES),
    vol.Optional("entity_picture"): str,
    vol.Optional("icon"): vol.Match(r"^[a-z0-9-]+:[a-z0-9-]+$"),
    vol.Optional("json_attributes_template"): template,
    vol.Optional("json_attributes_topic"): sub_topic,
    vol.Optional("name"): vol.Any(str, None),
    vol.Optional("object_id"): str,
    vol.Optional("default_entity_id"): str,
    vol.Optional("qos", default=0): QOS,
    vol.Required("unique_id"): str,  # optional for Home Assistant; required for a device block
}
STATE: dict[Any, Any] = {
    vol.Optional("state_topic"): sub_topic,
    vol.Optional("value_template"): template,
}
COMMAND: dict[Any, Any] = {
    vol.Required("command_topic"): topic,
    vol.Optional("command_template"): template,
    vol.Optional("retain", default=False): bool,
}

SENSOR_DEVICE_CLASSES = (
    "apparent_power", "aqi", "battery", "current", "energy", "energy_storage", "enum",
    "frequency", "power", "power_factor", "reactive_power", "temperature", "timestamp",
    "voltage", "duration",
)  # fmt: skip
SENSOR = vol.Schema(
    {
        **COMMON,
        vol.Required("state_topic"): sub_topic,
        vol.Optional("value_template"): template,
        vol.Optional("device_class"): vol.In(SENSOR_DEVICE_CLASSES),
        vol.Optional("state_class"): vol.In(
            ["measurement", "measurement_angle", "total", "total_increasing"]
        ),
        vol.Optional("unit_of_measurement"): str,
        vol.Optional("suggested_display_precision"): vol.All(int, vol.Range(min=0)),
        vol.Optional("expire_after"): vol.All(int, vol.Range(min=0)),
        vol.Optional("force_update", default=False): bool,
        vol.Optional("last_reset_value_template"): template,
        vol.Optional("options"): [str],
    }
)
BINARY_SENSOR = vol.Schema(
    {
        **COMMON,
        vol.Required("state_topic"): sub_topic,
        vol.Optional("value_template"): template,
        vol.Optional("device_class"): vol.In(
            [
                "battery",
                "battery_charging",
                "connectivity",
                "plug",
                "power",
                "problem",
                "running",
                "safety",
            ]
        ),
        vol.Optional("expire_after"): vol.All(int, vol.Range(min=0)),
        vol.Optional("force_update", default=False): bool,
        vol.Optional("off_delay"): vol.All(int, vol.Range(min=0)),
        vol.Optional("payload_on", default="ON"): str,
        vol.Optional("payload_off", default="OFF"): str,
    }
)
BUTTON = vol.Schema(
    {
        **COMMON,
        **COMMAND,
        vol.Optional("device_class"): vol.In(["identify", "restart", "update"]),
        vol.Optional("payload_press", default="PRESS"): str,
    }
)
NUMBER = vol.Schema(
    {
        **COMMON,
        **COMMAND,
        **STATE,
        vol.Optional("device_class"): vol.In(["power", "energy", "current", "voltage", "battery"]),
        vol.Optional("min", default=1.0): vol.Coerce(float),
        vol.Optional("max", default=100.0): vol.Coerce(float),
        vol.Optional("step", default=1.0): vol.All(vol.Coerce(float), vol.Range(min=1e-3)),
        vol.Optional("mode", default="auto"): vol.In(["auto", "box", "slider"]),
        vol.Optional("optimistic", default=False): bool,
        vol.Optional("payload_reset", default="None"): str,
        vol.Optional("unit_of_measurement"): str,
    }
)
SELECT = vol.Schema(
    {
        **COMMON,
        **COMMAND,
        **STATE,
        vol.Required("options"): vol.All([str], vol.Length(min=1)),
        vol.Optional("optimistic", default=False): bool,
    }
)
PLATFORMS = {
    "sensor": SENSOR,
    "binary_sensor": BINARY_SENSOR,
    "button": BUTTON,
    "number": NUMBER,
    "select": SELECT,
}

# Units Home Assistant accepts for a device class (sensor "device class" table).
UNITS = {"battery": {"%"}, "power": {"W", "kW", "MW", "mW", "GW", "TW", "BTU/h"}}


def validate(topic_: str, config: dict[str, Any]) -> dict[str, Any]:
    """Validate one discovery message as Home Assistant would; returns it with defaults."""
    m = DISCOVERY_TOPIC.match(topic_)
    if m is None:
        raise vol.Invalid(f"{topic_}: not a discovery topic")
    schema = PLATFORMS.get(m["component"])
    if schema is None:
        raise vol.Invalid(f"{topic_}: platform {m['component']} is not checked here")
    out: dict[str, Any] = schema(config)
    if "availability" in out and "availability_topic" in out:
        raise vol.Invalid("availability and availability_topic are exclusive")
    unit, dc = out.get("unit_of_measurement"), out.get("device_class")
    if dc in UNITS and unit not in UNITS[dc]:
        raise vol.Invalid(f"{topic_}: unit {unit!r} is not valid for device class {dc}")
    if m["component"] == "number" and not out["min"] < out["max"]:
        raise vol.Invalid(f"{topic_}: min must be below max")
    if m["component"] == "select" and len(set(out["options"])) != len(out["options"]):
        raise vol.Invalid(f"{topic_}: options must be unique")
    return out


_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.Undefined)


def render(tmpl: str, **variables: Any) -> str:
    """Render a template the way Home Assistant's MQTT entities do (`value`, `value_json`)."""
    return _ENV.from_string(tmpl).render(**variables).strip()
