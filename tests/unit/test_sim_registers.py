"""Register images: layout from pysunspec2 definitions and from the shipped RES-125 point map."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from adapters.modbus.points import PointSpec, decode_raw, encode_raw
from adapters.pointmap.reader import COLUMNS, builtin_path, load_pointmap
from adapters.simulator.registers import PointMapImage, SunSpecImage

FIXTURE = Path("/work/shared/fixtures/volttron-bess/inverter_points.csv")


def test_sunspec_layout_marker_headers_end() -> None:
    img = SunSpecImage((1, 802))
    regs = img.registers()
    assert regs[:2] == [0x5375, 0x6E53]
    assert regs[2:4] == [1, 66]  # model 1: ID, L
    assert regs[2 + 68 : 2 + 68 + 2] == [802, 62]
    assert regs[-2:] == [0xFFFF, 0]
    assert img.end - img.base == len(regs)


def test_scaled_set_get_and_write_through_registers() -> None:
    img = SunSpecImage((1, 802))
    img.set_raw(802, "SoC_SF", -1)
    img.set(802, "SoC", 47.26)
    assert img.get_raw(802, "SoC") == 473
    assert img.get(802, "SoC") == pytest.approx(47.3)
    setop = img.ref(802, "SetOp").address
    assert img.check_write(setop, 1) is None
    assert img.write(setop, [1]) == [(802, "SetOp")]
    assert img.get(802, "SetOp") == 1
    assert "read-only" in (img.check_write(img.ref(802, "SoC").address, 1) or "")
    assert "not a point" in (img.check_write(img.base, 1) or "")  # the SunS marker


def test_unimplemented_values_read_as_none() -> None:
    img = SunSpecImage((1, 802))
    assert img.get(802, "CellVMaxStr") is None
    img.set_raw(802, "SoC", 500)  # SoC_SF not set: not implemented -> value unusable
    assert img.get(802, "SoC") is None


def test_corrupt_sf_keeps_raw_encoding() -> None:
    img = SunSpecImage((1, 802))
    img.set_raw(802, "W_SF", 0)
    img.set(802, "W", 1234)
    img.corrupt_sf(802, "W_SF", 2)
    img.set(802, "W", 1234)  # physics keeps writing with the real SF
    assert img.get_raw(802, "W") == 1234
    assert img.get(802, "W") == 123400  # what a client computes
    img.restore_sf()
    assert img.get(802, "W") == 1234


def test_res125_pointmap_covers_the_fixture_and_has_exact_columns() -> None:
    path = builtin_path("res125")
    with open(path, newline="") as f:
        header = next(csv.reader(f))
    assert tuple(header) == COLUMNS
    points = load_pointmap(path, "res125")
    if FIXTURE.exists():
        with open(FIXTURE, newline="") as f:
            wanted = {row["mesa_name"] for row in csv.DictReader(f)}
        assert {p.name for p in points} == wanted
    img = PointMapImage("res125", points)  # raises on overlapping addresses
    writable = {p.name for p in points if p.access == "RW"}
    assert {"Heartbeat", "MaxPowerCommand", "OpMode", "SecurityCode"} <= writable
    assert "CIUFaultSummary" not in writable
    img.set("res125", "MaxPowerCommand", -12.3)
    p = img.ref("res125", "MaxPowerCommand")
    o = p.address - img.base
    assert decode_raw(p, img.registers()[o : o + p.length]) == -123


def test_encode_decode_orders() -> None:
    p = PointSpec("x/x", "x", "x", 0, 2, "int32", access="RW", sunspec=False, word_order="little")
    regs = encode_raw(p, -2)
    assert regs == [0xFFFE, 0xFFFF]
    assert decode_raw(p, regs) == -2


def test_corrupt_sf_to_not_implemented() -> None:
    from adapters.simulator import SiteSimulator

    sim = SiteSimulator({"devices": [{"name": "battery", "kind": "battery"}]})
    r = sim.inject("battery", "corrupt_sf", {"model": 802, "point": "SoC_SF", "value": None})
    assert r["faults"] == {"corrupt_sf": {"802/SoC_SF": None}}
    img = sim.device("battery").image
    ref = img.ref(802, "SoC_SF")
    assert img.registers()[ref.address - img.base] == 0x8000
    assert sim.value("battery", 802, "SoC") is None
    sim.advance(1)  # physics keeps running with the real SF
    sim.inject("battery", "clear")
    assert sim.value("battery", 802, "SoC") == 50.0
