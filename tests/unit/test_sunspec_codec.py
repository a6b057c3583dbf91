"""Decoding and encoding of point values: sentinels, scale factors, byte/word orders."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sunspec2 import device as ss_device

from adapters.modbus.points import (
    EncodeError,
    PointSpec,
    bytes_to_regs,
    decode_raw,
    encode_raw,
    engineering,
    to_raw,
)


def spec(type_: str, length: int = 1, **kw: Any) -> PointSpec:
    return PointSpec(
        key=f"9/{type_}", model="9", name=type_, address=0, length=length, type=type_, **kw
    )


SENTINELS = [
    ("int16", [0x8000]),
    ("uint16", [0xFFFF]),
    ("count", [0xFFFF]),
    ("enum16", [0xFFFF]),
    ("bitfield16", [0xFFFF]),
    ("acc16", [0]),
    ("sunssf", [0x8000]),
    ("int32", [0x8000, 0x0000]),
    ("uint32", [0xFFFF, 0xFFFF]),
    ("enum32", [0xFFFF, 0xFFFF]),
    ("bitfield32", [0xFFFF, 0xFFFF]),
    ("acc32", [0, 0]),
    ("float32", bytes_to_regs(struct.pack(">I", 0x7FC00000))),
]


@pytest.mark.parametrize(("type_", "regs"), SENTINELS)
def test_not_implemented_sentinels_decode_to_none(type_: str, regs: list[int]) -> None:
    assert decode_raw(spec(type_, len(regs)), regs) is None


@pytest.mark.parametrize(
    ("type_", "regs", "want"),
    [
        ("int16", [0xFFFF], -1),
        ("int16", [0x7FFF], 32767),
        ("uint16", [0xFFFE], 65534),
        ("int32", [0xFFFF, 0xFFFE], -2),
        ("uint32", [0x0001, 0x0000], 65536),
        ("sunssf", [0xFFFE], -2),
        ("float32", bytes_to_regs(struct.pack(">f", 1.5)), 1.5),
    ],
)
def test_plain_values(type_: str, regs: list[int], want: object) -> None:
    assert decode_raw(spec(type_, len(regs)), regs) == want


def test_strings_trimmed_and_leading_nul_is_none() -> None:
    s = spec("string", 4)
    assert decode_raw(s, bytes_to_regs(b"ab  \0\0\0\0")) == "ab"
    assert decode_raw(s, bytes_to_regs(b"\0bc\0\0\0\0\0")) is None


def test_sf_not_implemented_gives_none_where_pysunspec2_gives_raw() -> None:
    """Field notes: pysunspec2's cvalue returns the unscaled raw value; we publish null."""
    m = ss_device.Model(802)
    m.points["SoC"].set_value(555)
    m.points["SoC_SF"].set_value(None)  # not implemented -> 0x8000 in the image
    image = ss_device.Model(802, data=m.get_mb())
    assert image.points["SoC"].cvalue == 555  # pysunspec2: raw, looks like 555 %
    soc = spec("uint16", sf_key="802/SoC_SF")
    sf = decode_raw(spec("sunssf"), [0x8000])
    assert sf is None
    assert engineering(soc, 555, sf) is None


@settings(max_examples=60, deadline=None)
@given(raw=st.integers(0, 65534), sf=st.integers(-4, 4))
def test_scaling_equals_pysunspec2(raw: int, sf: int) -> None:
    m = ss_device.Model(802)
    m.points["WHRtg"].set_value(raw)
    m.points["WHRtg_SF"].set_value(sf)
    image = ss_device.Model(802, data=m.get_mb())
    got = engineering(spec("uint16", sf_key="802/WHRtg_SF"), raw, sf)
    assert got == image.points["WHRtg"].cvalue


def test_to_raw_applies_sf_inversely_and_checks_ranges() -> None:
    w = spec("int16", sf_key="802/W_SF")
    assert to_raw(w, 3000.0, 1) == 300
    assert to_raw(w, 12.34, -2) == 1234
    assert to_raw(w, 0, 0) == 0
    with pytest.raises(EncodeError) as e:
        to_raw(w, 40000, 0)
    assert e.value.code == "out_of_range"
    with pytest.raises(EncodeError) as e:
        to_raw(w, -32768, 0)  # the sentinel itself
    assert e.value.code == "out_of_range"
    for bad in (True, "3", None, [1]):
        with pytest.raises(EncodeError) as e:
            to_raw(w, bad, 0)
        assert e.value.code == "invalid_payload"
    with pytest.raises(EncodeError) as e:
        to_raw(spec("uint16"), -1, None)
    assert e.value.code == "out_of_range"


def test_enum_symbols_are_enforced() -> None:
    setop = spec("enum16", symbols=frozenset({1, 2}))
    assert to_raw(setop, 2, None) == 2
    with pytest.raises(EncodeError) as e:
        to_raw(setop, 3, None)
    assert e.value.code == "out_of_range"


@settings(max_examples=80, deadline=None)
@given(
    type_=st.sampled_from(["int16", "uint16", "int32", "uint32", "float32"]),
    byte_order=st.sampled_from(["big", "little"]),
    word_order=st.sampled_from(["big", "little"]),
    data=st.data(),
)
def test_pointmap_orders_round_trip(
    type_: str, byte_order: str, word_order: str, data: st.DataObject
) -> None:
    length = 1 if type_.endswith("16") else 2
    p = spec(type_, length, sunspec=False, byte_order=byte_order, word_order=word_order)
    if type_ == "float32":
        raw: float | int = data.draw(st.floats(width=32, allow_nan=False, allow_infinity=False))
    else:
        bits = 16 * length
        lo, hi = (
            (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
            if type_.startswith("int")
            else (0, (1 << bits) - 1)
        )
        raw = data.draw(st.integers(lo, hi))
    regs = encode_raw(p, raw)
    assert len(regs) == length
    back = decode_raw(p, regs)
    assert back == raw or (isinstance(raw, float) and math.isclose(back, raw))  # type: ignore[arg-type]


def test_pointmap_word_and_byte_order_layout() -> None:
    be = spec("uint32", 2, sunspec=False)
    lw = spec("uint32", 2, sunspec=False, word_order="little")
    lb = spec("uint32", 2, sunspec=False, byte_order="little")
    assert encode_raw(be, 0x11223344) == [0x1122, 0x3344]
    assert encode_raw(lw, 0x11223344) == [0x3344, 0x1122]
    assert encode_raw(lb, 0x11223344) == [0x2211, 0x4433]
    assert decode_raw(lw, [0x3344, 0x1122]) == 0x11223344


def test_pointmap_scale_and_offset() -> None:
    p = spec("int16", sunspec=False, scale=0.1, offset=-40.0)
    assert engineering(p, 655, None) == pytest.approx(25.5)
    assert to_raw(p, 25.5, None) == 655


def test_string_contract_text_ends_at_the_first_nul() -> None:
    """topics.md: what follows a NUL is never published; only spaces is not implemented."""
    s = spec("string", 4)
    assert decode_raw(s, bytes_to_regs(b"ABC\0xyz\0")) == "ABC"
    assert decode_raw(s, bytes_to_regs(b"        ")) is None
    assert decode_raw(s, bytes_to_regs(b"a b     ")) == "a b"
    assert decode_raw(s, bytes_to_regs(b"\xff\xfeok\0\0\0\0")) == "\ufffd\ufffdok"
