"""Writes on `{root}/{device}/set/{model}/{point}`: verified by read-back, every refusal coded."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from adapters.pointmap.reader import builtin_path
from edge.mqtt import BrokerSettings, MqttClient, Requester, Topics
from tests.integration.adapter_harness import SiteRunner

pytestmark = pytest.mark.broker
ROOT = "bess/t"
SIM = [{"name": "battery", "kind": "battery"}, {"name": "inverter", "kind": "inverter"}]
DEVICES = [{"name": "battery", "kind": "sunspec"}, {"name": "inverter", "kind": "sunspec"}]


def wait_online(probe: Any, *devices: str) -> None:
    for d in devices:
        probe.wait_for(f"{ROOT}/{d}/status", lambda m: m.payload == b"online", timeout=5)


def test_writes_round_trip_with_read_back(broker: Any, probe_factory: Any) -> None:
    with SiteRunner(broker, SIM, DEVICES) as site:
        probe = probe_factory(f"{ROOT}/#")
        wait_online(probe, "battery", "inverter")
        assert probe.request(f"{ROOT}/battery/set/802/SetOp", {"value": 1}) == {
            "ok": True,
            "value": 1,
            "raw": 1,
        }
        assert site.value("battery", 802, "SetOp") == 1
        sf = probe.wait_for(f"{ROOT}/inverter/704/WSet_SF").json()
        r = probe.request(f"{ROOT}/inverter/set/704/WSet", {"value": 5000})
        assert r["ok"] and r["value"] == pytest.approx(5000) and r["raw"] == round(5000 / 10**sf)
        assert site.value("inverter", 704, "WSet") == pytest.approx(5000)
        # The new value is published at once, not at the next poll.
        probe.wait_for(
            f"{ROOT}/inverter/704/WSet", lambda m: m.json() == pytest.approx(5000), timeout=1
        )
        # Nested group point: 704/PFWInj/PF.
        r = probe.request(f"{ROOT}/inverter/set/704/PFWInj/PF", {"value": 0.95})
        assert r["ok"] and r["value"] == pytest.approx(0.95)
        # A write of 0 is confirmed by read-back like any other (B5).
        assert probe.request(f"{ROOT}/battery/set/802/CtrlHb", {"value": 7})["value"] == 7
        assert probe.request(f"{ROOT}/battery/set/802/CtrlHb", {"value": 0}) == {
            "ok": True,
            "value": 0,
            "raw": 0,
        }
        assert site.value("battery", 802, "CtrlHb") == 0
        # AlmRst is self-clearing by default: the device reads back 0 after the reset.
        r = probe.request(f"{ROOT}/battery/set/802/AlmRst", {"value": 1})
        assert r == {"ok": True, "value": 0, "raw": 0, "readback": "self_cleared"}
        # Nagle is off on the Modbus socket (pymodbus does not do it by itself).
        client = site.adapters["battery"].bus._client
        assert client is not None
        sock = client.ctx.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        # MQTT 3.1.1 style envelope works too.
        r = probe.request(f"{ROOT}/battery/set/802/SetOp", {"value": 2, "correlation_id": "abc"})
        assert r["ok"] and r["correlation_id"] == "abc"


def test_every_bad_request_gets_its_code(broker: Any, probe_factory: Any) -> None:
    devices = [
        {"name": "battery", "kind": "sunspec", "self_clearing": []},
        {"name": "inverter", "kind": "sunspec", "limits": {"704/WSet*": [-50_000, 50_000]}},
    ]
    with SiteRunner(broker, SIM, devices) as site:
        probe = probe_factory(f"{ROOT}/#")
        wait_online(probe, "battery", "inverter")

        def code(topic: str, body: Any) -> str:
            r = probe.request(f"{ROOT}/{topic}", body)
            assert r["ok"] is False and r["error"]["message"], r
            return str(r["error"]["code"])

        assert code("battery/set/802/Nope", {"value": 1}) == "unknown_point"
        assert code("battery/set/999/SoC", {"value": 1}) == "unknown_point"
        assert code("battery/set/802/SoC", {"value": 50}) == "not_writable"
        assert code("battery/set/802/SetOp", {}) == "invalid_payload"
        assert code("battery/set/802/SetOp", {"value": "1"}) == "invalid_payload"
        assert code("battery/set/802/SetOp", {"value": True}) == "invalid_payload"
        assert code("battery/set/802/SetOp", {"value": None}) == "invalid_payload"
        assert code("battery/set/802/SetOp", b"{not json") == "invalid_payload"
        assert code("battery/set/802/SetOp", b'{"value": NaN}') == "invalid_payload"
        assert code("battery/set/802/SetOp", {"value": 7}) == "out_of_range"
        assert code("battery/set/802/CtrlHb", {"value": -1}) == "out_of_range"
        assert code("inverter/set/704/WSet", {"value": 1e15}) == "out_of_range"
        assert code("inverter/set/704/WSet", {"value": 60_000}) == "out_of_range"  # site limit
        assert probe.request(f"{ROOT}/inverter/set/704/WSet", {"value": 40_000})["ok"]
        assert site.value("battery", 802, "SetOp") != 7
        # Read-back differs (AlmRst clears itself, not declared self-clearing here).
        r = probe.request(f"{ROOT}/battery/set/802/AlmRst", {"value": 1})
        assert r["ok"] is False and r["error"]["code"] == "device_error" and r["error"]["raw"] == 0


def test_device_exception_is_reported_with_its_modbus_code(
    broker: Any, probe_factory: Any, tmp_path: Path
) -> None:
    # A map that claims a read-only register is writable: the device answers exception 2.
    text = (
        builtin_path("res125")
        .read_text()
        .replace(
            "CIUFaultSummary,100,uint16,big,big,1,0,,R,,,",
            "CIUFaultSummary,100,uint16,big,big,1,0,,RW,3,0.01,",
        )
    )
    csv = tmp_path / "wrong.csv"
    csv.write_text(text)
    sim = [{"name": "rhombus", "kind": "inverter", "profile": "res125"}]
    devices = [{"name": "rhombus", "kind": "pointmap", "pointmap": str(csv), "profile": "res125"}]
    with SiteRunner(broker, sim, devices):
        probe = probe_factory(f"{ROOT}/#")
        wait_online(probe, "rhombus")
        r = probe.request(f"{ROOT}/rhombus/set/res125/CIUFaultSummary", {"value": 1})
        assert r["ok"] is False
        assert r["error"]["code"] == "device_error" and r["error"]["modbus_code"] == 2


def test_frozen_device_times_out_then_is_offline(broker: Any, probe_factory: Any) -> None:
    # Slow polling and a wide budget, so the write is the first to meet the frozen device.
    devices = [{"name": "battery", "kind": "sunspec", "poll_s": 30, "offline_budget_s": 20}]
    with SiteRunner(broker, SIM[:1], devices) as site:
        probe = probe_factory(f"{ROOT}/#")
        wait_online(probe, "battery")
        site.inject("battery", "freeze", {"on": True})
        t0 = time.monotonic()
        r = probe.request(f"{ROOT}/battery/set/802/CtrlHb", {"value": 3})
        assert r["error"]["code"] == "timeout"
        assert time.monotonic() - t0 < 1.0
        probe.wait_for(f"{ROOT}/battery/status", lambda m: m.payload == b"offline", timeout=2)
        assert (
            probe.request(f"{ROOT}/battery/set/802/CtrlHb", {"value": 3})["error"]["code"]
            == "offline"
        )


def test_concurrent_writes_are_serialised(broker: Any, probe_factory: Any) -> None:
    with SiteRunner(broker, SIM[:1], DEVICES[:1], run_physics=True) as site:
        probe = probe_factory(f"{ROOT}/#")
        wait_online(probe, "battery")

        async def main() -> list[dict[str, Any]]:
            client = MqttClient(BrokerSettings(broker.host, broker.port), client_id="writer")
            await client.start()
            try:
                req = Requester(client, Topics("t"))
                await asyncio.sleep(0.1)
                jobs = [
                    req.request(f"{ROOT}/battery/set/802/CtrlHb", {"value": i})
                    for i in range(1, 21)
                ]
                jobs += [
                    req.request(f"{ROOT}/battery/set/802/SetOp", {"value": 1 + i % 2})
                    for i in range(10)
                ]
                return await asyncio.wait_for(asyncio.gather(*jobs), 10)
            finally:
                await client.stop()

        replies = asyncio.run(main())
        assert all(r["ok"] for r in replies), replies
        # Each write's read-back is its own value: nothing interleaved between write and read.
        assert [r["value"] for r in replies[:20]] == list(range(1, 21))
        assert [r["value"] for r in replies[20:]] == [1 + i % 2 for i in range(10)]
        assert site.value("battery", 802, "CtrlHb") in range(1, 21)


def test_res125_point_map_device(broker: Any, probe_factory: Any) -> None:
    sim = [{"name": "rhombus", "kind": "inverter", "profile": "res125"}]
    devices = [
        {
            "name": "rhombus",
            "kind": "pointmap",
            "pointmap": "res125",
            "readback_tolerance": {"res125/Heartbeat": 5},
        }
    ]
    with SiteRunner(broker, sim, devices) as site:
        probe = probe_factory(f"{ROOT}/#")
        wait_online(probe, "rhombus")
        meta = probe.wait_for(f"{ROOT}/rhombus/meta").json()
        assert meta["kind"] == "pointmap" and meta["models"] == ["res125"]
        assert meta["points"]["res125/MaxPowerCommand"] == {
            "unit": "kW",
            "type": "int16",
            "access": "RW",
        }
        for key in meta["points"]:
            name = key.split("/", 1)[1]
            m = probe.wait_for(f"{ROOT}/rhombus/{key}")
            assert m.json() == pytest.approx(site.value("rhombus", "res125", name)), key
        r = probe.request(f"{ROOT}/rhombus/set/res125/MaxPowerCommand", {"value": -12.5})
        assert r == {"ok": True, "value": -12.5, "raw": -125}
        r = probe.request(f"{ROOT}/rhombus/set/res125/Heartbeat", {"value": 931})
        assert r["ok"] and abs(r["value"] - 931) <= 5
