"""Point maps: a CSV describing a non-SunSpec Modbus device, one point per row.

Columns (header required, in any order, no others):
name,address,type,byte_order,word_order,scale,offset,unit,access,write_attempts,write_wait,max_data_age

value = raw * scale + offset. Every problem raises PointMapError naming the file, the line
and the column.
"""

from __future__ import annotations

import csv
import math
import re
from importlib import resources
from pathlib import Path

from adapters.modbus.points import PointSpec

COLUMNS = (
    "name",
    "address",
    "type",
    "byte_order",
    "word_order",
    "scale",
    "offset",
    "unit",
    "access",
    "write_attempts",
    "write_wait",
    "max_data_age",
)
REQUIRED = ("name", "address", "type")
TYPE_LEN = {
    "int16": 1,
    "uint16": 1,
    "bitfield": 1,
    "bitfield16": 1,
    "int32": 2,
    "uint32": 2,
    "bitfield32": 2,
    "float32": 2,
}
STRING_RE = re.compile(r"^string\[(\d{1,3})\]$")
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
BUILTIN = ("res125",)


class PointMapError(ValueError):
    pass


def builtin_path(name: str) -> Path:
    """The CSV shipped with the package for a built-in profile (e.g. `res125`)."""
    return Path(str(resources.files("adapters.pointmap").joinpath(f"{name}.csv")))


def _num(raw: str, kind: type, col: str, default: float | int | None) -> float | int | None:
    raw = raw.strip()
    if raw == "":
        return default
    try:
        v = kind(raw, 0) if kind is int else kind(raw)
    except ValueError:
        raise ValueError(
            f"{col}: {raw!r} is not {'an integer' if kind is int else 'a number'}"
        ) from None
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"{col}: must be finite")
    return v


def parse_row(row: dict[str, str], profile: str) -> PointSpec:
    name = (row.get("name") or "").strip()
    if not NAME_RE.match(name):
        raise ValueError(f"name: {name!r} must be letters, digits, _ . - (at most 64)")
    address = _num(row.get("address") or "", int, "address", None)
    if address is None or not 0 <= address <= 0xFFFF:
        raise ValueError("address: must be an integer 0..65535")
    typ = (row.get("type") or "").strip().lower()
    m = STRING_RE.match(typ)
    if m:
        length, typ = int(m.group(1)), "string"
        if not 1 <= length <= 125:
            raise ValueError("type: string length must be 1..125 registers")
    elif typ in TYPE_LEN:
        length = TYPE_LEN[typ]
        typ = "bitfield16" if typ == "bitfield" else typ
    else:
        raise ValueError(
            f"type: {typ!r} is not one of {', '.join(TYPE_LEN)} or string[N] (N registers)"
        )
    orders = {}
    for col in ("byte_order", "word_order"):
        v = (row.get(col) or "big").strip().lower() or "big"
        if v not in ("big", "little"):
            raise ValueError(f"{col}: {v!r} must be big or little")
        orders[col] = v
    scale = _num(row.get("scale") or "", float, "scale", 1.0)
    if scale == 0:
        raise ValueError("scale: must not be 0")
    offset = _num(row.get("offset") or "", float, "offset", 0.0)
    access = (row.get("access") or "R").strip().upper() or "R"
    if access == "W":
        access = "RW"
    if access not in ("R", "RW"):
        raise ValueError(f"access: {access!r} must be R or RW")
    attempts = _num(row.get("write_attempts") or "", int, "write_attempts", None)
    if attempts is not None and not 1 <= attempts <= 10:
        raise ValueError("write_attempts: must be 1..10")
    wait = _num(row.get("write_wait") or "", float, "write_wait", None)
    if wait is not None and not 0 <= wait <= 10:
        raise ValueError("write_wait: must be 0..10 s")
    age = _num(row.get("max_data_age") or "", float, "max_data_age", None)
    if age is not None and age <= 0:
        raise ValueError("max_data_age: must be > 0 s")
    unit = (row.get("unit") or "").strip() or None
    return PointSpec(
        key=f"{profile}/{name}",
        model=profile,
        name=name,
        address=int(address),
        length=length,
        type=typ,
        access=access,
        unit=unit,
        sunspec=False,
        scale=float(scale or 1.0),
        offset=float(offset or 0.0),
        byte_order=orders["byte_order"],
        word_order=orders["word_order"],
        write_attempts=int(attempts) if attempts is not None else None,
        write_wait_s=float(wait) if wait is not None else None,
        max_data_age_s=float(age) if age is not None else None,
    )


def parse_pointmap(text: str, profile: str, source: str = "<memory>") -> tuple[PointSpec, ...]:
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise PointMapError(
            f"{source}:1: unknown column(s) {', '.join(unknown)}; allowed: {','.join(COLUMNS)}"
        )
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise PointMapError(f"{source}:1: missing column(s) {', '.join(missing)}")
    reader.fieldnames = header
    specs: list[PointSpec] = []
    names: set[str] = set()
    used: dict[int, str] = {}
    for row in reader:
        line = reader.line_num
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        if None in row:
            raise PointMapError(f"{source}:{line}: more fields than columns")
        try:
            spec = parse_row(row, profile)
        except ValueError as exc:
            raise PointMapError(f"{source}:{line}: {exc}") from None
        if spec.name in names:
            raise PointMapError(f"{source}:{line}: name: {spec.name!r} appears twice")
        for a in range(spec.address, spec.end):
            if a in used:
                raise PointMapError(
                    f"{source}:{line}: address: {spec.name} overlaps {used[a]} at {a}"
                )
            used[a] = spec.name
        names.add(spec.name)
        specs.append(spec)
    if not specs:
        raise PointMapError(f"{source}: no points")
    return tuple(sorted(specs, key=lambda s: s.address))


def load_pointmap(path: str | Path, profile: str) -> tuple[PointSpec, ...]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PointMapError(f"{p}: cannot read: {exc}") from None
    return parse_pointmap(text, profile, str(p))
