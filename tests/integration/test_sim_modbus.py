"""The simulator over Modbus TCP: pysunspec2's own client scans it; pymodbus reads and writes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from adapters.modbus.points import decode_raw
from adapters.pointmap.reader import builtin_path, load_pointmap
from adapters.simulator import SiteSimulator

DEVICES = [
    {"name": "battery", "kind": "battery", "initial_soc": 63.4, "unit_id": 3},
    {"name": "inverter", "kind": "inverter"},
    {"name": "legacy", "kind": "inverter", "profile": "legacy"},
    {"name": "rhombus", "kind": "inverter", "profile": "res125"},
    {"name": "meter", "kind": "meter", "load_w": 12_345},
]
EXPECTED_MODELS = {
    "battery": [1, 802],
    "inverter": [1, 701, 702, 704, 705, 706, 711],
    "legacy": [1, 103, 120, 121, 123, 124],
    "meter": [1, 203],
}


def run(
    body: Callable[[SiteSimulator], Awaitable[None]], devices: list[dict[str, Any]] = DEVICES
) -> None:
    async def main() -> None:
        sim = SiteSimulator({"devices": devices}, site="t")
        await sim.start(run_physics=False)
        try:
            await body(sim)
        finally:
            await sim.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def scan(port: int, unit: int) -> dict[int, dict[str, Any]]:
    dev = SunSpecModbusClientDeviceTCP(slave_id=unit, ipaddr="127.0.0.1", ipport=port, timeout=2)
    try:
        dev.scan()
        return {mid: ms[0] for mid, ms in dev.models.items() if isinstance(mid, int)}
    finally:
        dev.close()


def _flat_points(group: Any, prefix: str = "") -> dict[str, Any]:
    out = {prefix + n: p for n, p in group.points.items()}
    for gname, g in group.groups.items():
        subs = g if isinstance(g, list) else [g]  # repeating groups (705 curves, points)
        for i, sub in enumerate(subs):
            label = gname if len(subs) == 1 else f"{gname}.{i + 1}"
            out.update(_flat_points(sub, f"{prefix}{label}."))
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED_MODELS))
def test_pysunspec2_scan_finds_every_model_with_sim_values(name: str) -> None:
    async def body(sim: SiteSimulator) -> None:
        unit = 3 if name == "battery" else 1
        models = await asyncio.to_thread(scan, sim.port(name), unit)
        assert sorted(models) == EXPECTED_MODELS[name]
        checked = 0
        for mid, model in models.items():
            for pname, point in _flat_points(model).items():
                if point.pdef["type"] == "pad":
                    continue
                want = sim.value(name, mid, pname)
                got = point.cvalue
                if isinstance(want, float) and got is not None:
                    assert got == pytest.approx(want, rel=1e-9, abs=1e-9), (mid, pname)
                else:
                    assert got == want, (mid, pname, got, want)
                checked += 1
        assert checked > 60
        assert models[1].Mn.cvalue == "bess-edge"

    run(body)


def test_scan_sees_scaled_values() -> None:
    async def body(sim: SiteSimulator) -> None:
        models = await asyncio.to_thread(scan, sim.port("battery"), 3)
        assert models[802].SoC.cvalue == pytest.approx(63.4)
        assert models[802].SoC_SF.value == -1
        assert models[802].WHRtg.cvalue == pytest.approx(100_000)
        meter = await asyncio.to_thread(scan, sim.port("meter"), 1)
        sf = meter[203].W_SF.value
        assert meter[203].W.cvalue == sim.value("meter", 203, "W")
        assert meter[203].W.cvalue == pytest.approx(12_345, abs=10**sf)

    run(body)


def test_res125_registers_follow_the_csv_point_map() -> None:
    points = load_pointmap(builtin_path("res125"), "res125")

    async def body(sim: SiteSimulator) -> None:
        sim.set_value("rhombus", "res125", "MaxPowerCommand", -12.5)
        client = AsyncModbusTcpClient("127.0.0.1", port=sim.port("rhombus"), timeout=1, retries=0)
        await client.connect()
        try:
            for p in points:
                rr = await client.read_holding_registers(p.address, count=p.length, device_id=1)
                assert not rr.isError(), p.name
                eng = decode_raw(p, rr.registers) * p.scale + p.offset
                assert eng == pytest.approx(sim.value("rhombus", "res125", p.name)), p.name
            hb = next(p for p in points if p.name == "Heartbeat")
            assert sim.value("rhombus", "res125", "Heartbeat") == 931
            wr = await client.write_register(hb.address, 900, device_id=1)
            assert not wr.isError()
            assert sim.value("rhombus", "res125", "Heartbeat") == 900
            st = next(p for p in points if p.name == "UnitStatus")
            wr = await client.write_register(st.address, 1, device_id=1)
            assert wr.isError()  # read-only point
        finally:
            client.close()
        assert sim.value("rhombus", "res125", "MaxPowerCommand") == pytest.approx(-12.5)

    run(body)


def test_write_read_back_and_read_only_refused() -> None:
    async def body(sim: SiteSimulator) -> None:
        base = 40000
        client = AsyncModbusTcpClient("127.0.0.1", port=sim.port("battery"), timeout=1, retries=0)
        await client.connect()
        try:
            rr = await client.read_holding_registers(base, count=4, device_id=3)
            assert rr.registers[:3] == [0x5375, 0x6E53, 1]
            models = await asyncio.to_thread(scan, sim.port("battery"), 3)
            setop = base + 2 + 68 + models[802].SetOp.offset
            soc = base + 2 + 68 + models[802].SoC.offset
            assert not (await client.write_register(setop, 1, device_id=3)).isError()
            assert sim.value("battery", 802, "State") == 2  # INITIALIZING
            rr = await client.read_holding_registers(setop, count=1, device_id=3)
            assert rr.registers == [1]
            assert (await client.write_register(soc, 999, device_id=3)).isError()
            assert sim.value("battery", 802, "SoC") == pytest.approx(63.4)
            sim.set_value("battery", 802, "SoC", 12.3)
            rr = await client.read_holding_registers(soc, count=1, device_id=3)
            assert rr.registers == [123]
        finally:
            client.close()

    run(body)
