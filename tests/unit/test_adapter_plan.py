"""Read batching, poll groups, publish-by-exception, backoff and the write-first lock."""

from __future__ import annotations

import asyncio
import itertools

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


def big_device() -> dict[str, PointSpec]:
    """Models with long repeating groups: 160 with 10 modules, 705 with 4 curves of 10 points,
    and the DER models, one after the other."""
    addr = 40002
    specs: dict[str, PointSpec] = {}
    models = [
        ss_device.Model(160, data={"N": 10, "module": [{"ID": i} for i in range(10)]}),
        ss_device.Model(
            705,
            data={"NCrv": 4, "NPt": 10, "crv": [{"ActPt": 10, "pt": [{}] * 10}] * 4},
        ),
        ss_device.Model(701),
        ss_device.Model(704),
    ]
    for m in models:
        regs = bytes_to_regs(m.get_mb())
        for p in build_layout(regs[0], addr, regs[1], regs).points:
            specs[p.key] = p
        addr += regs[1] + 2
    return specs


def test_no_register_is_read_twice_and_every_point_is_read_once() -> None:
    specs = big_device()
    assert len(specs) > 300
    blocks = plan_reads(specs.values(), specs)
    spans = sorted((b.start, b.end) for b in blocks)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    keys = [p.key for b in blocks for p in b.points]
    assert sorted(keys) == sorted(specs)  # each point in exactly one block
    assert all(b.start <= p.address and p.end <= b.end for b in blocks for p in b.points)
    assert all(b.count <= 125 for b in blocks)
    # Pairs stay together wherever blocks allow: most points with an SF share its request.
    with_sf = [(b, p) for b in blocks for p in b.points if p.sf_key]
    together = [1 for b, p in with_sf if b.start <= specs[p.sf_key].address < b.end]  # type: ignore[index]
    assert len(together) / len(with_sf) > 0.8


def test_refused_block_splits_at_gaps_then_in_halves() -> None:
    from adapters.modbus.plan import ReadBlock, split_block

    a, b, c, d = pt("a", 100), pt("b", 101), pt("c", 110), pt("d", 111)
    assert [(x.start, x.count) for x in split_block(ReadBlock(100, 12, [a, b, c, d]), {}, 125)] == [
        (100, 2),
        (110, 2),
    ]
    assert [(x.start, x.count) for x in split_block(ReadBlock(100, 2, [a, b]), {}, 125)] == [
        (100, 1),
        (101, 1),
    ]
    assert split_block(ReadBlock(100, 1, [a]), {}, 125) == []


def test_refused_points_back_off_and_come_back() -> None:
    from adapters.modbus.plan import ReadBlock
    from adapters.modbus.refused import RefusedPoints

    r = RefusedPoints(retry_min_s=60, retry_max_s=200)
    blk = ReadBlock(7, 1, [pt("w", 7)])
    assert r.refuse("x/w", blk, 2, now=0.0, wall=1000.0) is True
    assert r.due(59.0) == [] and r.due(60.0) == [("x/w", blk)]
    assert r.refuse("x/w", blk, 2, now=60.0, wall=1060.0) is False  # a failed retry
    assert r.next_due() == 180.0  # 60 s, then 120 s
    r.refuse("x/w", blk, 3, now=180.0, wall=0.0)
    assert r.next_due() == 380.0  # capped at 200 s
    assert r.meta() == {"x/w": {"modbus_code": 3, "since": 1000.0}}
    assert r.restored("x/w") is blk and r.meta() == {}
