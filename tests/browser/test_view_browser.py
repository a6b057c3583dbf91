"""The live page in Debian's headless Chromium against the simulator site over a real broker:
it loads, follows a simulator change within 1 s, shows an injected fault, the operator's STOP
stops the site, and a viewer has no controls and is refused by the server."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from edge.mqtt import Message, MqttClient
from tests.broker import Broker
from tests.browser.chromium import browser_page, require_chromium, screenshot
from tests.integration.controller_site import T
from tests.integration.view_site import PASSWORDS, ViewSite

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _chromium() -> None:
    require_chromium()


async def login(page: Any, url: str, user: str) -> None:
    await page.goto(url)
    await page.fill("#login-user", user)
    await page.fill("#login-password", PASSWORDS[user])
    await page.click("#login-submit")
    await page.wait_for_selector("#main:not([hidden])", timeout=5000)
    await page.wait_for_function(
        "document.querySelector('#state').dataset.state !== undefined"
        " && document.querySelector('#state').dataset.state !== ''",
        timeout=5000,
    )


async def badge(page: Any) -> str:
    return str(await page.get_attribute("#state", "data-state"))


async def confirm(page: Any, button: str) -> str:
    """Click a control, accept its confirmation, return the reply the page shows."""
    await page.evaluate("document.querySelector('#reply').textContent = ''")
    await page.click(button)
    await page.wait_for_selector("#confirm[open]", timeout=2000)
    await page.click("#confirm-ok")
    await page.wait_for_function(
        "/: (accepted|refused)/.test(document.querySelector('#reply').textContent)", timeout=8000
    )
    return str(await page.text_content("#reply"))


class CommandTap:
    """Sees every controller command on the broker (what the server really sent)."""

    def __init__(self, site: ViewSite) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.client = MqttClient(site.bsettings, "e2e-tap")
        self.client.subscribe(f"{T.root}/controller/cmd/#", self._on, qos=1)

    def _on(self, msg: Message) -> None:
        body = json.loads(msg.payload or b"{}")
        self.seen.append((T.last_level(msg.topic), body))


def test_operator_page_live_values_controls_fault(broker: Broker, tmp_path: Any) -> None:
    async def main() -> None:
        async with ViewSite(broker, history=tmp_path / "history.sqlite") as site:
            tap = CommandTap(site)
            await tap.client.start()
            async with browser_page() as page:
                t0 = time.monotonic()
                await login(page, site.view.url, "op")
                assert await badge(page) == "stopped"
                print(f"first render after login: {time.monotonic() - t0:.2f} s")
                assert await page.is_visible("#btn-stop") and await page.is_visible("#controls")

                # a value changed in the simulator appears within 1 s
                site.sim.device("battery").physics.set_soc(77.7)
                t1 = time.monotonic()
                await page.wait_for_function(
                    "document.querySelector('#soc').textContent === '77.7 %'", timeout=1000
                )
                print(f"SoC change on the page after {time.monotonic() - t1:.3f} s")

                # start, then charge: each confirmed, the reply shown, the site follows
                assert "start: accepted" in await confirm(page, "#btn-start")
                await site.wait_state("holding", 10)
                await page.wait_for_function(
                    "document.querySelector('#state').dataset.state === 'holding'", timeout=3000
                )
                await page.fill("#charge-w", "8000")
                reply = await confirm(page, "#btn-charge")
                assert "charge: accepted (state charging, applied 8.00 kW)" in reply, reply
                await site.wait(lambda: site.value("inverter", 701, "W") == -8000, 5, "charging")

                # mode and schedule: the request the server sends, and the controller's reply
                await page.select_option("#mode-name", "peak_shaving")
                reply = await confirm(page, "#btn-mode")
                mode_body = {
                    "mode": "peak_shaving",
                    "params": {"target_w": 50000, "recharge_below_w": 40000, "recharge_w": 10000},
                }
                assert ("mode", mode_body) in tap.seen
                direct = await site.cmd("mode", mode_body)
                mode_refused = not direct["ok"]
                if direct["ok"]:
                    assert "mode: accepted" in reply
                else:
                    assert f"mode: refused: {direct['error']['code']}: " in reply, (reply, direct)
                reply = await confirm(page, "#btn-schedule")
                sched = {"default": {"mode": "manual", "params": {"power_w": 0}}, "windows": []}
                assert ("schedule", {"schedule": sched}) in tap.seen
                assert reply.startswith("schedule: "), reply
                reply = await confirm(page, "#btn-schedule-clear")
                assert ("schedule", {"schedule": None}) in tap.seen
                direct = await site.cmd("schedule", {"schedule": None})
                code = "accepted" if direct["ok"] else direct["error"]["code"]
                assert code in reply, (reply, direct)
                if mode_refused:  # a controller without modes: a refusal changes nothing
                    await site.wait_state("charging", 5)

                # STOP is one click (no confirmation) and stops the site
                await screenshot(page, "view-operator-charging.png")
                await page.click("#btn-stop")
                await site.wait_state("stopped", 15)
                assert site.sim.device("inverter").physics.power_w == 0
                await page.wait_for_function(
                    "document.querySelector('#state').dataset.state === 'stopped'", timeout=3000
                )
                await page.wait_for_function(  # the reply may come after the new state
                    "document.querySelector('#reply').textContent.startsWith('stop: accepted')",
                    timeout=5000,
                )

                # an injected fault shows as a fault, with its detail
                assert "start: accepted" in await confirm(page, "#btn-start")
                await site.wait_state("holding", 10)
                site.sim.inject("battery", "alarm", {"bit": 1, "on": True})
                await site.wait_state("fault", 5)
                await page.wait_for_selector("#faults li.fault", timeout=3000)
                text = str(await page.text_content("#faults"))
                assert "battery_alarm" in text, text
                assert await badge(page) == "fault"
                assert "fault" in str(await page.get_attribute("#state", "class"))
                path = await screenshot(page, "view-operator-fault.png")
                assert path.stat().st_size > 10_000
            await tap.client.stop()

    asyncio.run(main())


def test_viewer_has_no_controls_and_is_refused(broker: Broker) -> None:
    async def main() -> None:
        async with ViewSite(broker) as site:
            assert (await site.cmd("start"))["ok"]
            await site.wait_state("holding", 10)
            tap = CommandTap(site)
            await tap.client.start()
            async with browser_page() as page:
                await login(page, site.view.url, "vw")
                assert await badge(page) == "holding"
                assert await page.query_selector("#controls") is None
                assert await page.query_selector("#btn-stop") is None
                # the same request the operator's page sends, from the viewer's session
                res = await page.evaluate(
                    """async () => {
                        const r = await fetch('/api/cmd/stop', {method: 'POST',
                          headers: {'Content-Type': 'application/json'}, body: '{}'});
                        return {status: r.status, body: await r.json()};
                    }"""
                )
                assert res["status"] == 403, res
                assert res["body"]["error"]["code"] == "forbidden"
                await screenshot(page, "view-viewer.png")
            await asyncio.sleep(0.5)
            assert tap.seen == []  # nothing reached the broker
            assert site.ctl.state == "holding"
            await tap.client.stop()

    asyncio.run(main())
