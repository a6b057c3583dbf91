"""The one description of a Modbus point, shared by SunSpec layouts and CSV point maps.

Pure: decoding registers into engineering values and encoding values back into registers,
with SunSpec's not-implemented sentinels mapped to None (published as JSON null).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

from sunspec2 import mb as ss_mb

Value = int | float | str | None

# SunSpec types decoded with pysunspec2's own functions, so our values equal its client's.
SUNSPEC_NUMERIC = {
    "int16",
    "uint16",
    "count",
    "acc16",
    "enum16",
    "bitfield16",
    "pad",
    "int32",
    "uint32",
    "acc32",
    "enum32",
    "bitfield32",
    "ipaddr",
    "int64",
    "uint64",
    "acc64",
    "float32",
    "float64",
    "sunssf",
}
# Integer ranges of the raw register values (the sentinel itself is excluded when writing).
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "int16": (-0x8000, 0x7FFF),
    "sunssf": (-0x8000, 0x7FFF),
    "uint16": (0, 0xFFFF),
    "count": (0, 0xFFFF),
    "acc16": (0, 0xFFFF),
    "enum16": (0, 0xFFFF),
    "bitfield16": (0, 0xFFFF),
    "pad": (0, 0xFFFF),
    "bitfield": (0, 0xFFFF),
    "int32": (-0x80000000, 0x7FFFFFFF),
    "uint32": (0, 0xFFFFFFFF),
    "acc32": (0, 0xFFFFFFFF),
    "enum32": (0, 0xFFFFFFFF),
    "bitfield32": (0, 0xFFFFFFFF),
    "ipaddr": (0, 0xFFFFFFFF),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint64": (0, (1 << 64) - 1),
    "acc64": (0, (1 << 64) - 1),
}
_STRUCT = {
    "int16": "h",
    "sunssf": "h",
    "uint16": "H",
    "count": "H",
    "acc16": "H",
    "enum16": "H",
    "bitfield16": "H",
    "bitfield": "H",
    "pad": "H",
    "int32": "i",
    "uint32": "I",
    "acc32": "I",
    "enum32": "I",
    "bitfield32": "I",
    "ipaddr": "I",
    "int64": "q",
    "uint64": "Q",
    "acc64": "Q",
    "float32": "f",
    "float64": "d",
}
# Raw values that mean "not implemented" in SunSpec (topics.md); never written by us.
SUNSPEC_SENTINEL: dict[str, int] = {
    "int16": -0x8000,
    "sunssf": -0x8000,
    "uint16": 0xFFFF,
    "count": 0xFFFF,
    "enum16": 0xFFFF,
    "bitfield16": 0xFFFF,
    "acc16": 0,
    "int32": -0x80000000,
    "uint32": 0xFFFFFFFF,
    "enum32": 0xFFFFFFFF,
    "bitfield32": 0xFFFFFFFF,
    "acc32": 0,
    "ipaddr": 0,
    "int64": -(1 << 63),
    "uint64": (1 << 64) - 1,
    "acc64": 0,
}


@dataclass(frozen=True)
class PointSpec:
    """One point: where it is, how to decode it and what its topic is.

    `key` is the topic suffix after `{device}/` (also the key in `meta.points`), e.g.
    `802/SoC`, `160/module/2/DCA`, `res125/GridFrequency`.
    """

    key: str
    model: str
    name: str
    address: int
    length: int
    type: str
    access: str = "R"
    unit: str | None = None
    sunspec: bool = True
    sf_key: str | None = None  # key of the scale-factor point in the same model
    sf_const: int | None = None  # a constant SF from the definition
    scale: float = 1.0  # point maps: value = raw * scale + offset
    offset: float = 0.0
    byte_order: str = "big"
    word_order: str = "big"
    symbols: frozenset[int] | None = None
    write_attempts: int | None = None
    write_wait_s: float | None = None
    max_data_age_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def end(self) -> int:
        return self.address + self.length

    @property
    def writable(self) -> bool:
        return self.access == "RW"

    @property
    def is_sf(self) -> bool:
        return self.type == "sunssf"

    @property
    def is_string(self) -> bool:
        return self.type in ("string", "ipv6addr", "eui48")


def regs_to_bytes(regs: list[int] | tuple[int, ...]) -> bytes:
    return struct.pack(f">{len(regs)}H", *(r & 0xFFFF for r in regs))


def bytes_to_regs(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def _ordered(spec: PointSpec, data: bytes) -> bytes:
    """Bring a point map's bytes into big-endian order (word order, then byte order)."""
    if spec.word_order == "little" and len(data) > 2:
        words = [data[i : i + 2] for i in range(0, len(data), 2)]
        data = b"".join(reversed(words))
    if spec.byte_order == "little":
        data = b"".join(data[i : i + 2][::-1] for i in range(0, len(data), 2))
    return data


def decode_string(data: bytes) -> str | None:
    """The text up to the first NUL, trailing spaces trimmed; empty means not implemented
    (topics.md: what follows a NUL is never published)."""
    text = data.split(b"\0", 1)[0].decode("utf-8", errors="replace").rstrip(" ")
    return text or None


def decode_raw(spec: PointSpec, regs: list[int] | tuple[int, ...]) -> Value:
    """The raw register value (no scaling); None for a SunSpec not-implemented sentinel."""
    if len(regs) < spec.length:
        raise ValueError(f"{spec.key}: need {spec.length} registers, got {len(regs)}")
    return decode_bytes(spec, regs_to_bytes(regs[: spec.length]))


def decode_bytes(spec: PointSpec, data: bytes) -> Value:
    """`decode_raw` on the point's bytes (2 per register, big-endian as on the wire), so a
    block's registers are converted to bytes once, not once per point."""
    if spec.type == "string":
        return decode_string(_ordered(spec, data) if not spec.sunspec else data)
    if spec.sunspec:
        info = ss_mb.point_type_info.get(spec.type)
        if info is None:
            raise ValueError(f"{spec.key}: unknown SunSpec type {spec.type!r}")
        v = info.data_to(data)
        if v is None or not info.is_impl(v):
            return None
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v
    fmt = _STRUCT.get(spec.type)
    if fmt is None:
        raise ValueError(f"{spec.key}: unknown type {spec.type!r}")
    (v,) = struct.unpack(">" + fmt, _ordered(spec, data))
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def apply_sf(raw: int | float, sf: int) -> int | float:
    """Scale like pysunspec2's `cvalue` (same rounding), so values compare equal."""
    if not sf:
        return raw
    return round(raw * math.pow(10, sf), -1 * sf)


def engineering(spec: PointSpec, raw: Value, sf: int | None) -> Value:
    """Raw -> engineering value. `sf` is the scale factor read in the same request.

    A point whose scale factor is not implemented is null: pysunspec2 would return the
    unscaled raw value there, which is a wrong number (field notes, section 2).
    """
    if raw is None or isinstance(raw, str):
        return raw
    if spec.sunspec:
        if spec.sf_key is not None:
            return None if sf is None else apply_sf(raw, sf)
        if spec.sf_const is not None:
            return apply_sf(raw, spec.sf_const)
        return raw
    if spec.scale == 1 and spec.offset == 0:
        return raw
    v = raw * spec.scale + spec.offset
    return round(v, 9)


class EncodeError(ValueError):
    """A value that cannot be written: `code` is `out_of_range` or `invalid_payload`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def to_raw(spec: PointSpec, value: Any, sf: int | None) -> int | float | str:
    """Engineering value -> raw register value (the scale factor applied inversely).

    Checks the JSON type, the register type's range, the sentinel and the enum's symbols.
    """
    if spec.is_string:
        if not isinstance(value, str):
            raise EncodeError("invalid_payload", f"{spec.key}: expected a string")
        data = value.encode("utf-8")
        if len(data) > 2 * spec.length:
            raise EncodeError("out_of_range", f"{spec.key}: at most {2 * spec.length} bytes")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EncodeError(
            "invalid_payload", f"{spec.key}: expected a number, got {type(value).__name__}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise EncodeError("invalid_payload", f"{spec.key}: not a finite number")
    exp = 0
    if spec.sunspec:
        if spec.sf_key is not None:
            if sf is None:
                raise EncodeError(
                    "device_error", f"{spec.key}: scale factor {spec.sf_key} is not implemented"
                )
            exp = sf
        else:
            exp = spec.sf_const or 0
        if not -10 <= exp <= 10:  # SunSpec scale factors are -10..10; anything else is garbage
            raise EncodeError("device_error", f"{spec.key}: scale factor {exp} is outside -10..10")
    try:
        # JSON integers can have thousands of digits: beyond a float, an OverflowError here.
        if spec.sunspec:
            scaled = value / math.pow(10, exp) if exp else value
        else:
            scaled = (value - spec.offset) / spec.scale
        if spec.type in ("float32", "float64"):
            scaled = float(scaled)
        if isinstance(scaled, float) and not math.isfinite(scaled):
            raise OverflowError
    except OverflowError:
        raise EncodeError(
            "out_of_range", f"{spec.key}: value is far outside the {spec.type} range"
        ) from None
    if spec.type in ("float32", "float64"):
        if spec.type == "float32" and abs(scaled) > 3.4028234663852886e38:
            raise EncodeError("out_of_range", f"{spec.key}: {value} does not fit a float32")
        return float(scaled)
    raw = round(scaled)
    lo, hi = INT_BOUNDS[spec.type]
    if not lo <= raw <= hi:
        raise EncodeError("out_of_range", f"{spec.key}: {value} is outside the {spec.type} range")
    if spec.sunspec and SUNSPEC_SENTINEL.get(spec.type) == raw:
        raise EncodeError(
            "out_of_range", f"{spec.key}: {value} is the not-implemented value of {spec.type}"
        )
    if spec.symbols is not None and raw not in spec.symbols:
        allowed = ", ".join(str(s) for s in sorted(spec.symbols))
        raise EncodeError("out_of_range", f"{spec.key}: {value} is not one of {allowed}")
    return raw


def encode_raw(spec: PointSpec, raw: int | float | str) -> list[int]:
    """Raw value -> registers, in the device's byte and word order."""
    if isinstance(raw, str):
        data = raw.encode("utf-8")[: 2 * spec.length].ljust(2 * spec.length, b"\0")
        return bytes_to_regs(data)
    fmt = _STRUCT[spec.type]
    data = struct.pack(">" + fmt, raw)
    if not spec.sunspec:
        # _ordered is its own inverse for these swaps.
        data = _ordered(spec, data)
    return bytes_to_regs(data)
