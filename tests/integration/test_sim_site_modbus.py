"""The simulated site over Modbus TCP and MQTT: pysunspec2 scans the PV inverter and the
meter (an oracle this project did not write), and meter faults are injected over a real
Mosquitto while a pymodbus client reads the meter."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from adapters.simulator import SiteSimulator
from adapters.simulator.registers import SunSpecImage
from edge.mqtt import Topics
from tests.broker import Broker
from tests.integration.test_sim_faults import _cli, _free_port, _wait_port, with_sim
from tests.integration.test_sim_modbus import _flat_points, run, scan
from tests.mqtt_probe import Probe

T = Topics("t")
DEVICES = [
    {"name": "battery", "kind": "battery", "connect_delay_s": 0},
    {"name": "inverter", "kind": "inverter", "ramp_w_per_s": 1e6},
    # full sun all day (no time of day needed): 1000 W/m2 -> the rating
    {"name": "pv", "kind": "pv", "rating_w": 50_000, "irradiance_profile": [[0, 1000]]},
    {"name": "meter", "kind": "meter", "load_w": 30_000},
]
METER_W = SunSpecImage((1, 203)).ref(203, "W").address


def test_pysunspec2_scans_the_pv_inverter() -> None:
    async def body(sim: SiteSimulator) -> None:
        sim.advance(1)
        models = await asyncio.to_thread(scan, sim.port("pv"), 1)
        assert sorted(models) == [1, 701, 702]
        for mid, model in models.items():
            for pname, point in _flat_points(model).items():
                if point.pdef["type"] == "pad":
                    continue
                want, got = sim.value("pv", mid, pname), point.cvalue
                if isinstance(want, float) and got is not None:
                    assert got == pytest.approx(want, rel=1e-9, abs=1e-9), (mid, pname)
                else:
                    assert got == want, (mid, pname, got, want)
        assert models[701].W.cvalue == pytest.approx(50_000, abs=10)
        assert models[702].WMaxRtg.cvalue == 50_000
        assert models[1].Md.cvalue == "sim-pv"

    run(body, DEVICES)


def test_meter_seen_by_pysunspec2_is_load_minus_pv_minus_battery() -> None:
    async def body(sim: SiteSimulator) -> None:
        sim.set_value("battery", 802, "SetOp", 1)
        sim.set_value("inverter", 704, "WSetEna", 1)
        sim.set_value("inverter", 704, "WSet", -40_000)  # charge 40 kW
        sim.advance(2)
        meter = await asyncio.to_thread(scan, sim.port("meter"), 1)
        pv = await asyncio.to_thread(scan, sim.port("pv"), 1)
        inv = await asyncio.to_thread(scan, sim.port("inverter"), 1)
        grid, pv_w, bat_w = meter[203].W.cvalue, pv[701].W.cvalue, inv[701].W.cvalue
        assert bat_w == pytest.approx(-40_000, abs=10)
        assert pv_w == pytest.approx(50_000, abs=10)
        res = 10 ** meter[203].W_SF.value
        assert grid == pytest.approx(30_000 - pv_w - bat_w, abs=res)  # +20 kW import

    run(body, DEVICES)


async def _read_w(port: int, timeout: float = 0.5) -> float:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=timeout, retries=0)
    await client.connect()
    try:
        if not client.connected:
            raise ConnectionError(f"nothing accepts connections on {port}")
        rr = await client.read_holding_registers(METER_W, count=1, device_id=1)
        if rr.isError():
            raise ModbusException(str(rr))
        sf = await client.read_holding_registers(METER_W + 4, count=1, device_id=1)
        raw = rr.registers[0] - (1 << 16 if rr.registers[0] & 0x8000 else 0)
        exp = sf.registers[0] - (1 << 16 if sf.registers[0] & 0x8000 else 0)
        return float(raw * 10**exp)
    finally:
        client.close()


@pytest.mark.broker
def test_meter_faults_freeze_offline_stale_over_mqtt(broker: Broker, probe_factory: Any) -> None:
    probe: Probe = probe_factory("bess/t/#")

    async def ask(device: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(probe.request, T.sim_cmd(device, action), body, 5.0)

    async def body(sim: SiteSimulator) -> None:
        port = sim.port("meter")
        assert await _read_w(port) == pytest.approx(30_000, abs=10)
        # a load step over MQTT shows in the next reading
        r = await ask("meter", "load", {"step_w": 15_000})
        assert r["ok"] is True and r["load_w"] == 45_000
        assert await _read_w(port) == pytest.approx(45_000, abs=10)
        r = await ask("meter", "load", {"w": "much"})
        assert r["ok"] is False and r["error"]["code"] == "invalid_payload"
        assert "w" in r["error"]["message"]

        # stale: the reading sticks while the load moves on
        assert (await ask("meter", "stale", {"on": True}))["faults"] == {
            "stale": True,
            "load": {"step_w": 15_000},
        }
        await ask("meter", "load", {"step_w": 0})
        await asyncio.sleep(0.2)
        assert await _read_w(port) == pytest.approx(45_000, abs=10)
        await ask("meter", "stale", {"on": False})
        await asyncio.sleep(0.1)
        assert await _read_w(port) == pytest.approx(30_000, abs=10)

        # freeze: requests get no reply, the connection stays
        await ask("meter", "freeze", {"on": True})
        t0 = time.monotonic()
        with pytest.raises(ModbusException):
            await _read_w(port, timeout=0.3)
        assert time.monotonic() - t0 < 2.0
        await ask("meter", "freeze", {"on": False})
        assert await _read_w(port) == pytest.approx(30_000, abs=10)

        # offline (kill): connections refused until cleared
        await ask("meter", "kill", {"on": True})
        await asyncio.sleep(0.2)
        with pytest.raises((ConnectionError, ModbusException)):
            await _read_w(port, timeout=0.3)
        r = await ask("meter", "clear", {})
        assert r["ok"] is True and r["faults"] == {}
        await asyncio.sleep(0.2)
        assert await _read_w(port) == pytest.approx(30_000, abs=10)

    with_sim(broker, body, [{"name": "meter", "kind": "meter", "load_w": 30_000}])


@pytest.mark.broker
def test_cli_injects_a_load_step_and_a_cloud(
    broker: Broker, probe_factory: Any, tmp_path: Path
) -> None:
    """`bess-edge sim` as a process; `bess-edge inject meter load ...` and `... pv cloud ...`
    change what a Modbus client reads from the meter."""
    probe: Probe = probe_factory("bess/t/sim/status")
    meter_port, pv_port = _free_port(), _free_port()
    site = tmp_path / "site.toml"
    site.write_text(
        f'[site]\nid = "t"\n[broker]\nhost = "127.0.0.1"\nport = {broker.port}\n'
        "[simulator]\ntime_scale = 10\n"
        f'[[simulator.devices]]\nname = "pv"\nkind = "pv"\nport = {pv_port}\n'
        "rating_w = 20000\nirradiance_profile = [[0, 1000]]\n"
        f'[[simulator.devices]]\nname = "meter"\nkind = "meter"\nport = {meter_port}\n'
        "load_w = 30000\n"
    )

    def inject(*args: str) -> str:
        r = subprocess.run(
            _cli("inject", *args, "-c", str(site)), capture_output=True, text=True, timeout=30
        )
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    proc = subprocess.Popen(
        _cli("sim", "-c", str(site)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_port(meter_port)
        probe.wait_for(T.sim_status, lambda m: m.payload == b"online", 10)
        assert asyncio.run(_read_w(meter_port)) == pytest.approx(10_000, abs=10)  # 30 - 20 PV
        assert '"load_w": 50000' in inject("meter", "load", "step_w=20000")
        assert asyncio.run(_read_w(meter_port)) == pytest.approx(30_000, abs=10)
        inject("pv", "cloud", "depth=0.5", "duration_s=3600")
        assert asyncio.run(_read_w(meter_port)) == pytest.approx(40_000, abs=10)
    finally:
        proc.terminate()
        proc.wait(10)
