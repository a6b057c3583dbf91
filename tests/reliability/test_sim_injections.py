"""The simulator injections added for issue 6.2: `slow` (replies arrive `delay_ms` late) and
`kill` (the device's Modbus server goes away and comes back on the same port)."""

from __future__ import annotations

import asyncio
import time

import pytest
from pymodbus.client import AsyncModbusTcpClient

from adapters.simulator import InjectError, SiteSimulator


async def _timed_read(client: AsyncModbusTcpClient) -> float:
    t0 = time.monotonic()
    rr = await client.read_holding_registers(40000, count=2, device_id=1)
    assert not rr.isError() and rr.registers == [0x5375, 0x6E53]
    return time.monotonic() - t0


def test_slow_delays_every_reply_and_clears() -> None:
    async def main() -> None:
        sim = SiteSimulator({"devices": [{"name": "battery", "kind": "battery"}]}, site="t")
        await sim.start(run_physics=False)
        client = AsyncModbusTcpClient("127.0.0.1", port=sim.port("battery"), timeout=2, retries=0)
        try:
            await client.connect()
            assert await _timed_read(client) < 0.15
            r = sim.inject("battery", "slow", {"delay_ms": 300})
            assert r["faults"] == {"slow": {"delay_ms": 300}}
            assert 0.3 <= await _timed_read(client) < 1.0
            sim.inject("battery", "slow", {"delay_ms": 0})
            assert await _timed_read(client) < 0.15
            sim.inject("battery", "slow", {"delay_ms": 300})
            sim.inject("battery", "clear", {})
            assert sim.inject("battery", "get", {"model": 802, "point": "SoC"})["faults"] == {}
            assert await _timed_read(client) < 0.15
        finally:
            client.close()
            await sim.stop()

    asyncio.run(asyncio.wait_for(main(), 20))


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_payload"),
        ({"delay_ms": "x"}, "invalid_payload"),
        ({"delay_ms": -1}, "out_of_range"),
        ({"delay_ms": 60_001}, "out_of_range"),
    ],
)
def test_slow_refuses_bad_delays(body: dict[str, object], code: str) -> None:
    sim = SiteSimulator({"devices": [{"name": "battery", "kind": "battery"}]}, site="t")
    with pytest.raises(InjectError) as exc:
        sim.inject("battery", "slow", body)
    assert exc.value.code == code and "delay_ms" in exc.value.message


def test_kill_refuses_connections_then_comes_back_on_the_same_port() -> None:
    async def main() -> None:
        sim = SiteSimulator(
            {
                "devices": [
                    {"name": "battery", "kind": "battery"},
                    {"name": "meter", "kind": "meter"},
                ]
            },
            site="t",
        )
        await sim.start(run_physics=False)
        port = sim.port("battery")
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
        try:
            await client.connect()
            assert await _timed_read(client) < 0.15
            assert sim.inject("battery", "kill", {"on": True})["faults"] == {"kill": True}
            await asyncio.sleep(0.2)
            with pytest.raises(OSError):  # nothing listens any more
                _r, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
            # the other device is untouched
            meter = AsyncModbusTcpClient("127.0.0.1", port=sim.port("meter"), timeout=0.5)
            await meter.connect()
            assert await _timed_read(meter) < 0.15
            meter.close()
            sim.inject("battery", "clear", {})  # clear revives it, on the same port
            await asyncio.sleep(0.2)
            assert sim.port("battery") == port
            client.close()
            client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
            await client.connect()
            assert await _timed_read(client) < 0.15
            sim.inject("battery", "kill", {"on": True})
        finally:
            client.close()
            await sim.stop()  # also while killed

    asyncio.run(asyncio.wait_for(main(), 20))
