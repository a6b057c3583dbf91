"""Home Assistant MQTT discovery for the site (edge/homeassistant/README.md).

`discovery` builds the retained configs (pure); `service` publishes them and republishes when
Home Assistant announces itself on `homeassistant/status`.
"""
