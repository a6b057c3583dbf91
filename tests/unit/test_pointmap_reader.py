"""The point-map CSV reader: the shipped RES-125 map and errors that name line and column."""

from __future__ import annotations

import pytest

from adapters.modbus.points import decode_raw, engineering
from adapters.pointmap.reader import PointMapError, builtin_path, load_pointmap, parse_pointmap

HEADER = (
    "name,address,type,byte_order,word_order,scale,offset,unit,access,"
    "write_attempts,write_wait,max_data_age\n"
)


def test_res125_ships_and_loads() -> None:
    specs = load_pointmap(builtin_path("res125"), "res125")
    by = {s.name: s for s in specs}
    assert len(specs) >= 50
    assert all(s.key == f"res125/{s.name}" and not s.sunspec for s in specs)
    assert by["MaxPowerCommand"].writable and by["MaxPowerCommand"].scale == pytest.approx(0.1)
    assert by["MaxPowerCommand"].write_attempts == 3 and by[
        "MaxPowerCommand"
    ].write_wait_s == pytest.approx(0.1)
    assert not by["GridFrequency"].writable
    assert engineering(
        by["GridFrequency"], decode_raw(by["GridFrequency"], [6000]), None
    ) == pytest.approx(60.0)


def test_full_row_with_every_column() -> None:
    (s,) = parse_pointmap(HEADER + "Temp,10,int32,little,little,0.5,-40,C,RW,4,0.2,1.5\n", "dev")
    assert (s.address, s.length, s.type, s.byte_order, s.word_order) == (
        10,
        2,
        "int32",
        "little",
        "little",
    )
    assert (s.scale, s.offset, s.unit, s.access) == (0.5, -40.0, "C", "RW")
    assert (s.write_attempts, s.write_wait_s, s.max_data_age_s) == (4, 0.2, 1.5)


def test_minimal_columns_and_strings() -> None:
    specs = parse_pointmap("name,address,type\nSerial,0,string[4]\nFlags,4,bitfield\n", "d")
    assert [(s.name, s.length, s.type) for s in specs] == [
        ("Serial", 4, "string"),
        ("Flags", 1, "bitfield16"),
    ]
    assert decode_raw(specs[0], [0x4142, 0x4300, 0, 0]) == "ABC"


@pytest.mark.parametrize(
    ("row", "where"),
    [
        ("A,x,uint16", "x.csv:2: address"),
        ("A,1,int8", "x.csv:2: type"),
        ("A,1,string", "x.csv:2: type"),
        ("A,1,uint16,middle", "x.csv:2: byte_order"),
        ("A,1,uint16,big,big,0", "x.csv:2: scale"),
        ("A,1,uint16,big,big,1,0,,RX", "x.csv:2: access"),
        ("A,1,uint16,big,big,1,0,,RW,0", "x.csv:2: write_attempts"),
        ("A,1,uint16,big,big,1,0,,RW,1,0.1,-1", "x.csv:2: max_data_age"),
        ("A B,1,uint16", "x.csv:2: name"),
    ],
)
def test_errors_name_line_and_column(row: str, where: str) -> None:
    with pytest.raises(PointMapError) as e:
        parse_pointmap(HEADER + row + "\n", "d", "x.csv")
    assert str(e.value).startswith(where), str(e.value)


def test_duplicates_overlaps_and_unknown_columns() -> None:
    with pytest.raises(PointMapError, match=r"x\.csv:3: name: 'A' appears twice"):
        parse_pointmap("name,address,type\nA,1,uint16\nA,2,uint16\n", "d", "x.csv")
    with pytest.raises(PointMapError, match=r"x\.csv:3: address: B overlaps A at 2"):
        parse_pointmap("name,address,type\nA,1,uint32\nB,2,uint16\n", "d", "x.csv")
    with pytest.raises(PointMapError, match="unknown column"):
        parse_pointmap("name,address,type,colour\nA,1,uint16,red\n", "d", "x.csv")
    with pytest.raises(PointMapError, match="missing column"):
        parse_pointmap("name,type\nA,uint16\n", "d", "x.csv")
    with pytest.raises(PointMapError, match="no points"):
        parse_pointmap("name,address,type\n", "d", "x.csv")
