"""What the page shows for things the simulator site does not have yet: an operating mode and
its `why`, a 2030.5 device with an active control, a meter, stale and offline devices. A
real view server and a real broker; the tree is published as topics.md describes it."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from edge.mqtt import BrokerSettings, MqttClient
from edge.view.config import ViewSchema
from edge.view.model import SiteRoles
from edge.view.service import ViewService
from tests.broker import Broker
from tests.browser.chromium import browser_page, require_chromium, screenshot

pytestmark = [pytest.mark.broker, pytest.mark.slow]
ROLES = SiteRoles(battery="bat", inverter="inv", meter="meter", der=("der1",),
                  refresh_s={"bat": 1.0})  # fmt: skip


def test_page_shows_mode_why_der_control_and_stale_data(broker: Broker) -> None:
    require_chromium()

    async def main() -> None:
        settings = BrokerSettings(broker.host, broker.port)
        view = ViewService("p1", settings, ViewSchema().load({"port": 0}), ROLES)
        stop = asyncio.Event()
        task = asyncio.create_task(view.run(stop))
        await asyncio.wait_for(view.ready.wait(), 10)
        pub = MqttClient(settings, "p1-pub")
        await pub.start()
        now = time.time()
        tree = {
            "controller/status": "online",
            "controller/state": json.dumps({
                "state": "discharging", "soc": 64.0, "faults": [],
                "setpoint": {"requested_w": 20000, "applied_w": 12000},
                "limits": {"charge_w": 30000, "discharge_w": 12000, "source": "battery"},
                "mode": {"name": "peak_shaving", "params": {"target_w": 50000},
                         "since": now, "source": "command"},
                "why": "peak_shaving: import 62.0 kW > target 50 kW, discharge 12 kW; "
                       "bound by: discharge_limit",
                "ts": now}),
            "bat/status": "online", "bat/ts": str(now - 30), "bat/802/SoC": "64",
            "inv/status": "offline", "inv/701/W": "12000",
            "meter/status": "online", "meter/ts": str(now), "meter/203/W": "50000",
            "der1/status": "online", "der1/ts": str(now), "der1/124/WChaMax": "-3000",
            "der1/802/SoC": "41.5",
        }  # fmt: skip
        try:
            async with browser_page() as page:
                await page.goto(view.url)
                await page.wait_for_selector("#main:not([hidden])")
                for topic, payload in tree.items():
                    pub.publish(f"bess/p1/{topic}", payload, qos=1, retain=True)
                await page.wait_for_function(
                    "document.querySelector('#state').dataset.state === 'discharging'"
                    " && document.querySelector('#der tr[data-name=der1]')", timeout=3000
                )  # fmt: skip
                await asyncio.sleep(0.5)
                assert await page.text_content("#mode") == "mode peak_shaving (command)"
                why = str(await page.text_content("#why"))
                assert why.startswith("peak_shaving: import 62.0 kW") and "bound by" in why
                der = str(await page.text_content("#der tr[data-name=der1]"))
                assert "fixed -3.00 kW" in der and "41.5 %" in der
                bat = await page.query_selector("#devices tr[data-name=bat]")
                assert bat is not None and "stale" in str(await bat.get_attribute("class"))
                assert "stale" in str(await bat.text_content())  # 30 s old, refresh 1 s
                inv = str(await page.text_content("#devices tr[data-name=inv]"))
                assert "offline" in inv
                # an offline inverter's power is not shown as a value
                power = str(await page.text_content("#power tr[data-name=inverter]"))
                assert "—" in power
                grid = str(await page.text_content("#power tr[data-name=grid]"))
                assert "50.00 kW" in grid
                limits = str(await page.text_content("#limits"))
                assert "12.00 kW" in limits and "30.00 kW" in limits
                await screenshot(page, "view-mode-der-stale.png")
        finally:
            await pub.stop()
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(main())
