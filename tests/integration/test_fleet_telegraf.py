"""The Telegraf config in docs/fleet-telegraf.md against the real topic tree: its subscriptions
(matched by Mosquitto), topic parsing and payload formats, on the simulator site. Telegraf
itself is not in Debian (see that file), so its rules are applied here as it documents them."""

from __future__ import annotations

import asyncio
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from edge.mqtt import Message, MqttClient
from tests.broker import Broker
from tests.integration.controller_site import SITE, ControllerSite

pytestmark = [pytest.mark.broker, pytest.mark.slow]
DOC = Path(__file__).resolve().parents[2] / "docs" / "fleet-telegraf.md"
PREFIX = "fleet/"  # the bridge adds it upstream and changes nothing else (topics.md)


def doc_config() -> dict[str, Any]:
    block = re.search(r"```toml\n(.*?)```", DOC.read_text(), re.S)
    assert block, "no TOML block in docs/fleet-telegraf.md"
    return tomllib.loads(block.group(1))


def parse_topic(pattern: str, tags: str, topic: str) -> dict[str, str] | None:
    """Telegraf's topic_parsing: same number of levels, `+` matches one, `_` skips one."""
    p, t, names = pattern.split("/"), topic.split("/"), tags.split("/")
    if len(p) != len(t) or any(a not in ("+", b) for a, b in zip(p, t, strict=True)):
        return None
    return {n: v for n, v in zip(names, t, strict=True) if n != "_"}


def dig(obj: Any, path: str) -> Any:
    for k in path.split("."):
        obj = obj.get(k) if isinstance(obj, dict) else None
    return obj


def test_docs_telegraf_config_reads_the_real_tree(broker: Broker) -> None:
    consumers = doc_config()["inputs"]["mqtt_consumer"]
    assert len(consumers) == 2

    async def main() -> dict[int, list[Message]]:
        got: dict[int, list[Message]] = {i: [] for i in range(len(consumers))}
        async with ControllerSite(broker) as site:
            assert (await site.cmd("start"))["ok"]
            await site.wait_state("holding", 10)
            assert (await site.cmd("charge", {"power_w": 6000}))["ok"]
            await site.wait(lambda: site.value("inverter", 701, "W") == -6000, 5, "charging")
            client = MqttClient(site.bsettings, "telegraf-check")
            for i, c in enumerate(consumers):
                for f in c["topics"]:
                    assert f.startswith(PREFIX)
                    client.subscribe(f.removeprefix(PREFIX), lambda m, i=i: got[i].append(m))
            await client.start()
            await asyncio.sleep(3.0)
            await client.stop()
        return got

    got = asyncio.run(main())
    points, state = consumers
    rule = points["topic_parsing"][0]
    assert points["data_format"] == "value" and points["data_type"] == "float"
    seen: set[tuple[str, str, str]] = set()
    for m in got[0]:
        tags = parse_topic(rule["topic"], rule["tags"], PREFIX + m.topic)
        assert tags is not None, m.topic
        assert tags["site"] == SITE
        float(m.payload)  # what the value parser does; null would be dropped, not stored
        seen.add((tags["device"], tags["model"], tags["point"]))
    assert {("battery", "802", "SoC"), ("battery", "802", "W"), ("inverter", "701", "W")} <= seen

    rule = state["topic_parsing"][0]
    js = state["json_v2"][0]
    assert got[1], "no controller state"
    for m in got[1]:
        tags = parse_topic(rule["topic"], rule["tags"], PREFIX + m.topic)
        assert tags == {"site": SITE}
        body = json.loads(m.payload)
        assert isinstance(dig(body, js["timestamp_path"]), float | int)
        for tag in js["tag"]:
            assert isinstance(dig(body, tag["path"]), str)
        for field in js["field"]:
            assert isinstance(dig(body, field["path"]), float | int), field["path"]
    assert json.loads(got[1][-1].payload)["state"] == "charging"
