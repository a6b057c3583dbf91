"""Fault injection over MQTT (real Mosquitto) and what a Modbus client then sees."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from adapters.simulator import SiteSimulator
from adapters.simulator.service import attach_mqtt
from edge.mqtt import BrokerSettings, MqttClient, Topics, Will
from tests.broker import Broker
from tests.mqtt_probe import Probe

pytestmark = pytest.mark.broker

DEVICES = [
    {"name": "battery", "kind": "battery", "connect_delay_s": 0.5},
    {"name": "inverter", "kind": "inverter"},
    {"name": "rhombus", "kind": "inverter", "profile": "res125"},
]
T = Topics("t")


def addr(point: str) -> int:
    """Absolute register address of a model 802 point, from pysunspec2's definition."""
    from adapters.simulator.registers import SunSpecImage

    return SunSpecImage((1, 802)).ref(802, point).address


SOC_ADDR = addr("SoC")


def with_sim(
    broker: Broker,
    body: Callable[[SiteSimulator], Awaitable[None]],
    devices: list[dict[str, Any]] = DEVICES,
) -> None:
    async def main() -> None:
        sim = SiteSimulator({"time_scale": 10, "step_s": 0.02, "devices": devices}, site="t")
        await sim.start()
        client = MqttClient(
            BrokerSettings(host=broker.host, port=broker.port), "sim-t", will=Will(T.sim_status)
        )
        attach_mqtt(sim, client, T)
        await client.start(timeout=5)
        try:
            await body(sim)
        finally:
            await client.stop()
            await sim.stop()

    asyncio.run(asyncio.wait_for(main(), 60))


async def ask(probe: Probe, device: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
    return await asyncio.to_thread(probe.request, T.sim_cmd(device, action), body, 5.0)


async def read_soc(port: int) -> Any:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.3, retries=0)
    await client.connect()
    try:
        return await client.read_holding_registers(SOC_ADDR, count=1, device_id=1)
    finally:
        client.close()


def test_status_online_and_alarm_state_get(broker: Broker, probe_factory: Any) -> None:
    probe: Probe = probe_factory("bess/t/#")

    async def body(sim: SiteSimulator) -> None:
        m = await asyncio.to_thread(
            probe.wait_for, T.sim_status, lambda m: m.payload == b"online", 5
        )
        assert m.retain is False or m.payload == b"online"
        r = await ask(probe, "battery", "alarm", {"bit": 3, "on": True})
        assert r["ok"] is True and r["Evt1"] == 8
        assert sim.value("battery", 802, "Evt1") == 8
        r = await ask(probe, "battery", "state", {"value": 99})
        assert r["ok"] is True and sim.value("battery", 802, "State") == 99
        r = await ask(probe, "battery", "get", {"model": 802, "point": "State"})
        assert r == {
            "ok": True,
            "device": "battery",
            "action": "get",
            "value": 99,
            "faults": {"state": 99, "alarm": [3]},
        }
        r = await ask(probe, "battery", "state", {"value": None})
        assert sim.value("battery", 802, "State") == 1
        r = await ask(probe, "battery", "alarm", {"bit": 99})
        assert r["ok"] is False and r["error"]["code"] == "out_of_range"
        assert "bit" in r["error"]["message"]
        r = await ask(probe, "battery", "teleport", {})
        assert r["ok"] is False and r["error"]["code"] == "unknown_command"
        r = await ask(probe, "nobody", "clear", {})
        assert r["ok"] is False and r["error"]["code"] == "unknown_device"

    with_sim(broker, body)


def test_inverter_fault_stops_power(broker: Broker, probe_factory: Any) -> None:
    probe: Probe = probe_factory("bess/t/#")

    async def body(sim: SiteSimulator) -> None:
        sim.set_value("battery", 802, "SetOp", 1)
        sim.set_value("inverter", 704, "WSet", 5000)
        sim.set_value("inverter", 704, "WSetEna", 1)
        deadline = time.monotonic() + 5
        while sim.value("inverter", 701, "W") != 5000 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert sim.value("inverter", 701, "W") == 5000
        r = await ask(probe, "inverter", "inverter_fault", {"point": "Alrm", "value": 1})
        assert r["ok"] is True
        await asyncio.sleep(0.1)
        assert sim.value("inverter", 701, "Alrm") == 1
        assert sim.value("inverter", 701, "W") == 0
        assert sim.value("inverter", 701, "St") == 1  # only the injected register changes
        assert sim.value("inverter", 701, "InvSt") == 7  # STANDBY: no power
        r = await ask(probe, "rhombus", "inverter_fault", {"point": "CIUFaultSummary", "value": 4})
        assert r["ok"] is True and sim.value("rhombus", "res125", "CIUFaultSummary") == 4
        r = await ask(probe, "rhombus", "inverter_fault", {"point": "Alrm", "value": 4})
        assert r["ok"] is False and r["error"]["code"] == "unknown_point"
        await ask(probe, "inverter", "clear", {})
        assert sim.value("inverter", 701, "Alrm") == 0
        await asyncio.sleep(0.3)
        assert float(sim.value("inverter", 701, "W") or 0) > 0  # type: ignore[arg-type]

    with_sim(broker, body)


def test_freeze_then_unfreeze(broker: Broker, probe_factory: Any) -> None:
    probe: Probe = probe_factory("bess/t/#")

    async def body(sim: SiteSimulator) -> None:
        port = sim.port("battery")
        assert not (await read_soc(port)).isError()
        assert (await ask(probe, "battery", "freeze", {"on": True}))["ok"] is True
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.3, retries=0)
        await client.connect()
        try:
            t0 = time.monotonic()
            from pymodbus.exceptions import ModbusException

            with pytest.raises(ModbusException):
                rr = await client.read_holding_registers(SOC_ADDR, count=1, device_id=1)
                if rr.isError():
                    raise ModbusException("error response")
            assert time.monotonic() - t0 < 2.0
            # The loop is not blocked: MQTT still answers while the device is frozen.
            r = await ask(probe, "battery", "get", {"model": 802, "point": "SoC"})
            assert r["ok"] is True and r["faults"] == {"freeze": True}
            assert (await ask(probe, "battery", "freeze", {"on": False}))["ok"] is True
        finally:
            client.close()
        rr = await read_soc(port)
        assert not rr.isError() and rr.registers == [500]

    with_sim(broker, body)


def test_drop_closes_connections(broker: Broker, probe_factory: Any) -> None:
    probe: Probe = probe_factory("bess/t/#")

    async def body(sim: SiteSimulator) -> None:
        port = sim.port("battery")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.1)
        r = await ask(probe, "battery", "drop", {})
        assert r["ok"] is True and r["dropped"] >= 1
        data = await asyncio.wait_for(reader.read(10), 2)
        assert data == b""  # closed by the server
        writer.close()
        assert not (await read_soc(port)).isError()  # new connections still served

    with_sim(broker, body)


def test_corrupt_sf_and_stale(broker: Broker, probe_factory: Any) -> None:
    probe: Probe = probe_factory("bess/t/#")

    async def body(sim: SiteSimulator) -> None:
        port = sim.port("battery")
        r = await ask(probe, "battery", "corrupt_sf", {"model": 802, "point": "SoC_SF", "value": 2})
        assert r["ok"] is True and r["faults"]["corrupt_sf"] == {"802/SoC_SF": 2}
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
        await client.connect()
        try:
            rr = await client.read_holding_registers(SOC_ADDR, count=1, device_id=1)
            assert rr.registers == [500]  # raw unchanged, encoded with the real SF -1
            sf_addr = addr("SoC_SF")
            rr = await client.read_holding_registers(sf_addr, count=1, device_id=1)
            assert rr.registers == [2]
            assert sim.value("battery", 802, "SoC") == 50000  # what a client would compute
            await ask(probe, "battery", "clear", {})
            rr = await client.read_holding_registers(sf_addr, count=1, device_id=1)
            assert rr.registers == [0xFFFF]  # -1
            # stale: Hb (1 Hz counter) stops moving
            hb_addr = addr("Hb")
            r = await ask(probe, "battery", "stale", {"on": True})
            assert r["ok"] is True
            a = (await client.read_holding_registers(hb_addr, count=1, device_id=1)).registers
            await asyncio.sleep(0.4)  # 4 simulated seconds at time_scale 10
            b = (await client.read_holding_registers(hb_addr, count=1, device_id=1)).registers
            assert a == b
            await ask(probe, "battery", "stale", {"on": False})
            await asyncio.sleep(0.4)
            c = (await client.read_holding_registers(hb_addr, count=1, device_id=1)).registers
            assert c != b
        finally:
            client.close()

    with_sim(broker, body)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _site_file(tmp_path: Path, broker_port: int, bat_port: int) -> Path:
    p = tmp_path / "site.toml"
    p.write_text(
        f'[site]\nid = "t"\n[broker]\nhost = "127.0.0.1"\nport = {broker_port}\n'
        f'[simulator]\ntime_scale = 10\n[[simulator.devices]]\nname = "battery"\n'
        f'kind = "battery"\nport = {bat_port}\n'
    )
    return p


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge.cli", *args]


def _wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def test_cli_sim_and_inject(broker: Broker, probe_factory: Any, tmp_path: Path) -> None:
    probe: Probe = probe_factory("bess/t/sim/status")
    bat_port = _free_port()
    site = _site_file(tmp_path, broker.port, bat_port)
    proc = subprocess.Popen(
        _cli("sim", "-c", str(site)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        _wait_port(bat_port)
        probe.wait_for(T.sim_status, lambda m: m.payload == b"online", 10)
        r = subprocess.run(
            _cli("inject", "battery", "alarm", "bit=3", "on=true", "-c", str(site)),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 0, r.stderr
        assert '"Evt1": 8' in r.stdout
        r = subprocess.run(
            _cli("inject", "battery", "alarm", "bit=77", "-c", str(site)),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 1 and "out_of_range" in r.stdout
    finally:
        proc.terminate()
        proc.wait(10)
    # A clean stop announces it: the retained status goes offline.
    probe.wait_for(T.sim_status, lambda m: m.payload == b"offline", 5)


def test_cli_inject_times_out_without_simulator(broker: Broker, tmp_path: Path) -> None:
    site = _site_file(tmp_path, broker.port, _free_port())
    r = subprocess.run(
        _cli("inject", "battery", "clear", "--timeout", "0.5", "-c", str(site)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1 and "no reply" in r.stderr


def test_sim_serves_modbus_without_broker_and_mqtt_comes_later(
    broker: Broker, tmp_path: Path
) -> None:
    broker.stop()
    bat_port = _free_port()
    site = _site_file(tmp_path, broker.port, bat_port)  # nothing listens on the broker port yet
    proc = subprocess.Popen(
        _cli("sim", "-c", str(site)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_port(bat_port)
        rr = asyncio.run(read_soc(bat_port))
        assert not rr.isError() and rr.registers == [500]
        assert proc.poll() is None
        broker.start()
        deadline = time.monotonic() + 10
        while True:
            r = subprocess.run(
                _cli(
                    "inject",
                    "battery",
                    "get",
                    "model=802",
                    "point=SoC",
                    "--timeout",
                    "1",
                    "-c",
                    str(site),
                ),
                capture_output=True,
                text=True,
                timeout=30,
            )
            if r.returncode == 0 or time.monotonic() > deadline:
                break
        assert r.returncode == 0, r.stderr
        assert '"value": 50.0' in r.stdout
    finally:
        proc.terminate()
        proc.wait(10)
