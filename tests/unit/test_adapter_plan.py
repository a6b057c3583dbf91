"""Read batching, poll groups, publish-by-exception, backoff and the write-first lock."""

from __future__ import annotations

import asyncio

import pytest
from sunspec2 import device as ss_device

from adapters.modbus.bus import POLL, WRITE, PriorityLock
from adapters.modbus.config import PollGroupConfig
from adapters.modbus.plan import PublishFilter, assign_groups, backoff, plan_reads
from adapters.modbus.points import PointSpec, bytes_to_regs
from adapters.sunspec.layout import build_layout


def layout(mid: int) -> dict[str, PointSpec]:
    regs = bytes_to_regs(ss_device.Model(mid).get_mb())
    return {p.key: p for p in build_layout(mid, 40002, regs[1], regs).points}


def pt(key: str, address: int, length: int = 1) -> PointSpec:
    return PointSpec(key=key, model="x", name=key, address=address, length=length, type="uint16")


def test_model_701_over_125_registers_keeps_every_sf_with_its_value() -> None:
    specs = layout(701)
    assert max(p.end for p in specs.values()) - 40002 > 125
    blocks = plan_reads(specs.values(), specs)
    assert len(blocks) == 2
    for b in blocks:
        assert b.count <= 125
        for p in b.points:
            assert b.start <= p.address and p.end <= b.end
            if p.sf_key:
                sf = specs[p.sf_key]
                assert b.start <= sf.address and sf.end <= b.end, p.key
    assert sorted(p.key for b in blocks for p in b.points) == sorted(specs)


def test_gaps_are_bridged_only_when_small() -> None:
    pts = [pt("a", 100), pt("b", 110, 2), pt("c", 200)]
    blocks = plan_reads(pts, {}, max_gap=16)
    assert [(b.start, b.count) for b in blocks] == [(100, 12), (200, 1)]
    assert [(b.start, b.count) for b in plan_reads(pts, {}, max_gap=0)] == [
        (100, 1),
        (110, 2),
        (200, 1),
    ]
    assert len(plan_reads(pts, {}, max_gap=100)) == 1


def test_no_block_exceeds_max_regs() -> None:
    pts = [pt(f"p{i}", 1000 + i * 3, 2) for i in range(200)]
    blocks = plan_reads(pts, {}, max_regs=125, max_gap=16)
    assert all(b.count <= 125 for b in blocks)
    assert sum(len(b.points) for b in blocks) == 200
    assert len(blocks) == 5  # 600 registers: ceil(600 / 125)


def test_control_group_alone_reads_only_what_it_needs() -> None:
    specs = layout(802)
    groups = assign_groups(
        list(specs.values()),
        [
            PollGroupConfig("control", 0.1, ("802/SoC", "802/SetOp")),
            PollGroupConfig("nameplate", 0, ("802/*Rtg*",)),
        ],
        1.0,
    )
    by_name = {g.name: g for g in groups}
    assert {p.key for p in by_name["control"].points} == {"802/SoC", "802/SetOp"}
    assert {p.key for p in by_name["nameplate"].points} == {
        "802/AHRtg",
        "802/WHRtg",
        "802/AHRtg_SF",
        "802/WHRtg_SF",
    }
    assert by_name["nameplate"].once and by_name["default"].period_s == 1.0
    blocks = plan_reads(by_name["control"].points, specs)
    assert len(blocks) == 1
    soc_sf = specs["802/SoC_SF"]
    assert blocks[0].start <= soc_sf.address < blocks[0].end  # SoC with its SF, one request


def test_max_data_age_sets_the_period_of_point_map_points() -> None:
    a = PointSpec(
        key="m/a",
        model="m",
        name="a",
        address=0,
        length=1,
        type="uint16",
        sunspec=False,
        max_data_age_s=0.5,
    )
    b = PointSpec(key="m/b", model="m", name="b", address=1, length=1, type="uint16", sunspec=False)
    groups = {g.name: g for g in assign_groups([a, b], [], 2.0)}
    assert groups["age-0.5"].period_s == 0.5 and groups["default"].period_s == 2.0


def test_publish_filter_deadband_and_refresh() -> None:
    f = PublishFilter(refresh_s=10, default_deadband=0.0, deadbands={"802/SoC": 0.5})
    assert f.changed("802/SoC", 50.0)
    assert not f.changed("802/SoC", 50.4)
    assert f.changed("802/SoC", 50.6)
    assert f.changed("802/SoC", None)  # null always goes out
    assert f.changed("802/SoC", 50.6)
    assert f.changed("802/W", 1)
    assert not f.changed("802/W", 1)
    assert f.changed("802/W", 1.0001)  # deadband 0: every change
    assert f.changed("1/Mn", "a") and not f.changed("1/Mn", "a") and f.changed("1/Mn", "b")
    assert f.refresh_due(0.0)
    f.refreshed(100.0, {})
    assert not f.refresh_due(109.9) and f.refresh_due(110.0)
    f.forget()
    assert f.changed("802/W", 1.0001) and f.refresh_due(110.0)


def test_backoff_is_capped() -> None:
    assert [backoff(i, 0.1, 1.0) for i in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff(1000, 0.1, 2.0) == 2.0


def test_priority_lock_serves_writes_before_queued_polls() -> None:
    async def main() -> list[str]:
        lock = PriorityLock()
        order: list[str] = []

        async def user(name: str, prio: int) -> None:
            async with lock.hold(prio):
                order.append(name)
                await asyncio.sleep(0.001)

        await lock.acquire(POLL)  # a poll is on the wire
        tasks = [asyncio.create_task(user("poll1", POLL)), asyncio.create_task(user("poll2", POLL))]
        await asyncio.sleep(0)
        tasks += [
            asyncio.create_task(user("write1", WRITE)),
            asyncio.create_task(user("write2", WRITE)),
        ]
        await asyncio.sleep(0)
        lock.release()
        await asyncio.wait_for(asyncio.gather(*tasks), 2)
        assert not lock.locked
        return order

    assert asyncio.run(main()) == ["write1", "write2", "poll1", "poll2"]


def test_priority_lock_survives_cancelled_waiters() -> None:
    async def main() -> None:
        lock = PriorityLock()
        await lock.acquire(POLL)
        waiter = asyncio.create_task(lock.acquire(WRITE))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        lock.release()
        await asyncio.wait_for(lock.acquire(POLL), 1)  # not deadlocked
        lock.release()
        assert not lock.locked

    asyncio.run(main())
