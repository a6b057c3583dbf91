"""The bridge's MQTT side beyond points: admin ops and set/dderc, over a real broker and TLS."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from edge.bridge.config import BridgeDevice
from tests.integration.test_bridge_exchange import (
    NS,
    Device2030,
    T,
    bridge_cfg,
    edev_doc,
    q,
    running_bridge,
    session_for,
)
from tests.integration.test_bridge_pki import make_pki

pytestmark = pytest.mark.broker


def test_admin_registers_and_removes_devices_and_dderc_replaces_the_default(
    tmp_path: Path, broker: Any, probe_factory: Any
) -> None:
    pki = make_pki(tmp_path / "pki", "bat", "ev")
    cfg = bridge_cfg(pki, devices=(BridgeDevice("bat", pki.lfdi("bat"), pki.sfdi("bat"), None),))
    probe = probe_factory(f"{T.root}/#")
    with running_bridge(cfg, broker) as svc:
        base = f"https://127.0.0.1:{svc.port}"
        probe.wait_for(T.bridge_status, lambda m: m.payload == b"online")
        # out-of-band registration of "ev" (registration is closed in the site file)
        ev = pki.lfdi("ev")
        r = probe.request(T.bridge_admin("edev"), {"lfdi": ev, "registered": True, "pin": 1234})
        assert r["ok"] and r["name"] == f"edev-{pki.sfdi('ev')}", r
        probe.wait_for(T.status(r["name"]))
        bad = probe.request(T.bridge_admin("edev"), {"lfdi": "xyz", "registered": True})
        assert bad["ok"] is False and "lfdi" in bad["error"]["message"]
        # set/dderc with a reply; a bad one changes nothing
        d = probe.request(T.dderc("bat"), {"opModExpLimW": 1500, "setGradW": 27})
        assert d["ok"] and d["default"] == {"opModExpLimW": 1500.0, "setGradW": 27}, d
        refused = probe.request(T.dderc("bat"), {"opModExpLimW": -1})
        assert refused["ok"] is False and refused["error"]["code"] == "out_of_range"
        rates = probe.request(T.bridge_admin("rates"), {"resource": "DERProgramList",
                                                        "poll_rate_s": 77})  # fmt: skip
        assert rates["ok"], rates

        async def scenario() -> None:
            async with session_for(pki, "ev") as s:
                dev = Device2030(s, base)
                edev = q(await dev.get("/edev"), "sep:EndDevice")
                assert q(await dev.get(edev.get("href") + "/rg"), "sep:pIN").text == "1234"
                st, _, _ = await dev.status("POST", "/edev", edev_doc(pki.sfdi("ev")))
                assert st == 409  # already registered (by the operator)
            async with session_for(pki, "bat") as s:
                dev = Device2030(s, base)
                dd = await dev.get("/edev/1/derp/1/dderc")
                lim = dd.find(f"{{{NS}}}DERControlBase/{{https://csipaus.org/ns/v1.3}}opModExpLimW")
                assert lim is not None and lim.findtext(f"{{{NS}}}value") == "1500"
                assert dd.findtext(f"{{{NS}}}setGradW") == "27"
                assert (await dev.get("/edev/1/derp")).get("pollRate") == "77"

        asyncio.run(scenario())
        # removal: the device gets 403 and its status goes offline
        name = r["name"]
        assert probe.request(T.bridge_admin("edev"), {"lfdi": ev, "registered": False})["ok"]
        probe.wait_for(T.status(name), lambda m: m.payload == b"offline")

        async def gone() -> None:
            async with session_for(pki, "ev") as s:
                st, _, _ = await Device2030(s, base).status("GET", "/dcap")
                assert st == 403

        asyncio.run(gone())
