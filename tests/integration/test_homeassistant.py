"""Home Assistant discovery over the real broker with the real controller: a small stand-in
for Home Assistant's MQTT integration reads the retained configs, renders their templates
(tests/ha_schema.py) and presses buttons, sets numbers and selects options on the topics the
configs name; the controller's replies come back on the `last_command` sensor."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest

from edge.controller.core import COMMANDS
from edge.homeassistant.config import HomeAssistantSchema
from edge.homeassistant.service import HomeAssistantService
from edge.mqtt import BrokerSettings
from edge.mqtt.topics import ha_status
from tests.broker import Broker
from tests.ha_schema import render, validate
from tests.integration.controller_site import SITE, ControllerSite, T
from tests.mqtt_probe import Probe

pytestmark = [pytest.mark.broker, pytest.mark.slow]


class HomeAssistant:
    """What Home Assistant does with discovery: entities from configs, states from templates."""

    def __init__(self, broker: Broker) -> None:
        self.probe = Probe(broker.host, broker.port, "homeassistant/#", f"{T.root}/#")

    def configs(self) -> dict[str, dict[str, Any]]:
        out = {}
        for m in self.probe.snapshot():
            if m.topic.startswith("homeassistant/") and m.topic.endswith("/config"):
                if m.payload:
                    out[m.topic.split("/")[3]] = validate(m.topic, json.loads(m.payload))
                else:
                    out.pop(m.topic.split("/")[3], None)
        return out

    def entity(self, obj: str) -> dict[str, Any]:
        return self.configs()[obj]

    def state(self, obj: str) -> str | None:
        c = self.entity(obj)
        for a in c.get("availability", []):
            last = self.probe.latest(a["topic"])
            if last is None or last.payload.decode() != a["payload_available"]:
                return "unavailable"
        msg = self.probe.latest(c["state_topic"])
        if msg is None:
            return None
        text = msg.payload.decode()
        if "value_template" not in c:
            return text
        return render(c["value_template"], value=text, value_json=json.loads(text))

    def press(self, obj: str) -> None:
        c = self.entity(obj)
        self.probe.publish(c["command_topic"], c["payload_press"], qos=c["qos"])

    def set_value(self, obj: str, value: Any) -> None:
        c = self.entity(obj)
        if "options" in c:
            assert value in c["options"]
        else:
            assert c["min"] <= value <= c["max"]
        payload = render(c["command_template"], value=value)
        self.probe.publish(c["command_topic"], payload, qos=c["qos"])

    async def wait(self, obj: str, expected: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while (got := self.state(obj)) != expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{obj}: {got!r}, expected {expected!r}")
            await asyncio.sleep(0.02)


def _run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))


@contextlib.asynccontextmanager
async def discovery(broker: Broker, **cfg: Any) -> AsyncIterator[HomeAssistantService]:
    settings = BrokerSettings(broker.host, broker.port, keepalive=2)
    svc = HomeAssistantService(SITE, settings, HomeAssistantSchema().load(cfg))
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        yield svc
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def test_command_round_trips_through_the_topics_the_configs_name(broker: Broker) -> None:
    ha = HomeAssistant(broker)

    async def main() -> None:
        async with (
            ControllerSite(broker, "sunspec_704") as site,
            discovery(
                broker, devices=["battery", "inverter"], points={"grid_w": "inverter/701/W"}
            ) as svc,
        ):
            expected = len(svc.discovery.configs())
            await site.wait(lambda: len(ha.configs()) == expected, 5, "all configs")
            await ha.wait("state", "stopped")
            await ha.wait("battery_online", "online")
            await ha.wait("fault", "OFF")
            soc = float(ha.state("soc") or "nan")
            assert soc == pytest.approx(site.value("battery", 802, "SoC"), abs=0.5)
            # A refused command: its reply reaches Home Assistant's result sensor.
            ha.set_value("charge_w", 5000.0)
            await ha.wait("last_command", "not_allowed_in_state")
            assert site.ctl.state == "stopped"
            ha.press("start")
            await ha.wait("last_command", "accepted")
            await ha.wait("state", "holding")
            ha.set_value("charge_w", 5000.0)
            await ha.wait("state", "charging")
            await ha.wait("charge_w", "5000.0")
            await ha.wait("battery_w", "-5000.0")
            ha.set_value("discharge_w", 3000.0)
            await ha.wait("state", "discharging")
            await ha.wait("discharge_w", "3000.0")
            await ha.wait("charge_w", "0")
            ha.set_value("mode_select", "manual")
            if "mode" in COMMANDS:
                await ha.wait("mode_select", "manual")
            else:  # the controller of this tree has no modes: the refusal is shown as such
                await ha.wait("last_command", "unknown_command")
            ha.press("stop")
            await ha.wait("state", "stopped", 15)
            # Home Assistant restarting (its birth message) gets every config again.
            n = len([m for m in ha.probe.snapshot() if m.topic.endswith("/config")])
            ha.probe.publish(ha_status(), "online")
            await site.wait(
                lambda: (
                    len([m for m in ha.probe.snapshot() if m.topic.endswith("/config")])
                    >= n + expected
                ),
                5,
                "republished configs",
            )
        # Devices and controller gone: their entities become unavailable.
        await ha.wait("soc", "unavailable")
        await ha.wait("state", "unavailable")

    try:
        _run(main())
    finally:
        ha.probe.close()
