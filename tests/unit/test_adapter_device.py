"""DeviceAdapter logic with a fake register bus (no sockets): gap fallback, write rules."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.modbus.device import DeviceAdapter
from adapters.modbus.errors import DeviceTimeout, ReadRefused
from adapters.pointmap.reader import parse_pointmap
from edge.config import parse_site
from edge.mqtt import BrokerSettings, RpcError, Topics
from edge.mqtt.rpc import Request

CSV = (
    "name,address,type,scale,access,write_attempts,write_wait\n"
    "A,0,uint16,1,RW,3,0\n"
    "B,1,int16,0.1,RW,,\n"
    "C,10,uint16,1,R,,\n"
)


class FakeRegs:
    """Holding registers; `missing` addresses answer exception 2, writes can be made to fail."""

    def __init__(self, missing: set[int]) -> None:
        self.regs = dict.fromkeys(range(0, 20), 0)
        self.missing = missing
        self.reads: list[tuple[int, int]] = []
        self.writes: list[tuple[int, list[int]]] = []
        self.write_error: Exception | None = None
        self.ignore_writes = False

    async def read(self, address: int, count: int) -> list[int]:
        self.reads.append((address, count))
        if any(a in self.missing for a in range(address, address + count)):
            raise ReadRefused(2, f"read {address}+{count}: illegal address")
        return [self.regs[a] for a in range(address, address + count)]

    async def write(self, address: int, values: list[int]) -> None:
        self.writes.append((address, values))
        if self.write_error is not None:
            raise self.write_error
        if not self.ignore_writes:
            for i, v in enumerate(values):
                self.regs[address + i] = v


def adapter(fake: FakeRegs, **cfg: Any) -> DeviceAdapter:
    site = parse_site(
        {
            "site": {"id": "s"},
            "devices": [{"name": "dev", "kind": "pointmap", "pointmap": "x.csv", **cfg}],
        }
    )
    a = DeviceAdapter(Topics("s"), BrokerSettings(), site.devices[0], parse_pointmap(CSV, "pm"))
    a.bus.read = fake.read  # type: ignore[method-assign]
    a.bus.write = fake.write  # type: ignore[method-assign]
    a._set_layout(list(a.pointmap or ()), "pointmap", ["pm"], {})
    a.online = True
    return a


def set_req(point: str, body: dict[str, Any]) -> Request:
    return Request(f"bess/s/dev/set/pm/{point}", body, None)


def test_refused_gap_falls_back_to_separate_reads() -> None:
    fake = FakeRegs(missing=set(range(2, 10)))
    fake.regs.update({0: 5, 1: 65535, 10: 9})
    a = adapter(fake, max_gap=16)
    (group,) = a.groups
    assert [(b.start, b.count) for b in group.blocks] == [(0, 11)]  # bridged
    asyncio.run(a._poll(a.groups))
    assert a.values == {"pm/A": 5, "pm/B": pytest.approx(-0.1), "pm/C": 9}
    assert [(b.start, b.count) for b in group.blocks] == [(0, 2), (10, 1)]  # remembered
    fake.reads.clear()
    asyncio.run(a._poll(a.groups))
    assert fake.reads == [(0, 2), (10, 1)]


def test_write_rules() -> None:
    fake = FakeRegs(missing=set())
    a = adapter(fake)

    def call(point: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return asyncio.run(a._on_set(set_req(point, body)))
        except RpcError as exc:
            return exc.reply()

    assert call("B", {"value": -2.5}) == {"value": -2.5, "raw": -25}
    assert fake.regs[1] == 0xFFE7
    assert call("A", {"value": 0}) == {"value": 0, "raw": 0}
    assert call("C", {"value": 1})["error"]["code"] == "not_writable"
    assert call("Z", {"value": 1})["error"]["code"] == "unknown_point"
    assert call("A", {"value": 70000})["error"]["code"] == "out_of_range"
    # Read-back differs: every attempt is made (3 from the CSV), then device_error.
    fake.writes.clear()
    fake.ignore_writes = True
    r = call("A", {"value": 4})
    assert r["error"]["code"] == "device_error" and r["error"]["raw"] == 0
    assert len(fake.writes) == 3
    # An exception 3 is final: no second attempt.
    fake.writes.clear()
    fake.write_error = ReadRefused(3, "illegal value")
    r = call("A", {"value": 4})
    assert r["error"] == {
        "code": "device_error",
        "message": r["error"]["message"],
        "modbus_code": 3,
    }
    assert len(fake.writes) == 1
    # No answer: timeout, and the poll loop is told to reconnect.
    fake.write_error = DeviceTimeout("no response")
    assert call("A", {"value": 4})["error"]["code"] == "timeout"
    assert a._broken
    a.online = False
    assert call("A", {"value": 4})["error"]["code"] == "offline"


def test_site_limits_refuse_before_writing() -> None:
    fake = FakeRegs(missing=set())
    a = adapter(fake, limits={"pm/B": [-10, 10]})
    with pytest.raises(RpcError) as e:
        asyncio.run(a._on_set(set_req("B", {"value": 10.5})))
    assert e.value.code == "out_of_range" and fake.writes == []


def test_start_up_publishes_each_point_once() -> None:
    """The first poll's publication is the first full refresh: not followed by another."""
    fake = FakeRegs(missing=set())
    a = adapter(fake)
    asyncio.run(a._poll(a.groups))
    assert a.published == len(a.specs) == 3
    asyncio.run(a._poll(a.groups))  # nothing changed, refresh not due yet
    assert a.published == 3
    assert a.filter.last_refresh is not None


def test_point_refused_on_its_own_is_null_unreadable_and_retried_with_backoff() -> None:
    now = [0.0]
    fake = FakeRegs(missing={1})
    fake.regs.update({0: 5, 10: 9})
    a = adapter(fake, max_gap=16, refused_retry_min_s=10, refused_retry_max_s=30)
    a.clock = lambda: now[0]
    asyncio.run(a._poll(a.groups))
    assert a.values == {"pm/A": 5, "pm/B": None, "pm/C": 9}
    assert a.meta is not None and a.meta["unreadable"] == {
        "pm/B": {"modbus_code": 2, "since": pytest.approx(a.wall(), abs=5)}
    }
    assert (1, 1) not in [(b.start, b.count) for g in a.groups for b in g.blocks]
    fake.reads.clear()
    for t in (1.0, 5.0, 9.9):  # polls go on without touching B
        now[0] = t
        asyncio.run(a._poll(a.groups))
    assert (1, 1) not in fake.reads and len(fake.reads) == 6
    now[0] = 10.0
    asyncio.run(a._poll(a.groups))
    assert fake.reads[-1] == (1, 1)  # the retry, alone
    assert a.refused.next_due() == 30.0  # refused again: 20 s later
    fake.missing.clear()
    fake.regs[1] = 0xFFF6
    now[0] = 30.0
    asyncio.run(a._poll(a.groups))
    assert a.values["pm/B"] == pytest.approx(-1.0)
    assert a.meta["unreadable"] == {}
    assert (1, 1) in [(b.start, b.count) for g in a.groups for b in g.blocks]


def test_other_exceptions_still_fail_the_device() -> None:
    fake = FakeRegs(missing=set())
    a = adapter(fake)

    async def gateway_down(address: int, count: int) -> list[int]:
        raise ReadRefused(11, "gateway target failed to respond")

    a.bus.read = gateway_down  # type: ignore[method-assign]
    with pytest.raises(ReadRefused):
        asyncio.run(a._poll(a.groups))


def test_busy_answers_are_retried_with_backoff_within_the_offline_budget() -> None:
    import time

    from adapters.modbus.bus import ModbusBus

    site = parse_site(
        {
            "site": {"id": "s"},
            "devices": [{"name": "d", "kind": "sunspec", "offline_budget_s": 0.3}],
        }
    )
    bus = ModbusBus(site.devices[0])
    answers: list[Any] = [ReadRefused(6), ReadRefused(5), [7, 8]]

    async def device(address: int, count: int) -> list[int]:
        a = answers.pop(0) if answers else ReadRefused(6)
        if isinstance(a, Exception):
            raise a
        return list(a)

    bus._read = device  # type: ignore[method-assign]
    assert asyncio.run(bus.read(0, 2)) == [7, 8]
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeout, match="busy"):
        asyncio.run(bus.read(0, 2))
    assert 0.25 <= time.monotonic() - t0 < 0.5
    answers[:] = [ReadRefused(2)]
    with pytest.raises(ReadRefused):  # not busy: no retry
        asyncio.run(bus.read(0, 2))


def test_a_device_that_refuses_every_point_is_not_online() -> None:
    fake = FakeRegs(missing=set(range(0, 20)))
    a = adapter(fake, refused_retry_min_s=10)
    with pytest.raises(DeviceTimeout, match="refuses every point"):
        asyncio.run(a._poll(a.groups))
    assert a.meta is not None and set(a.meta["unreadable"]) == {"pm/A", "pm/B", "pm/C"}
