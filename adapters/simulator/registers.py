"""Register images of simulated devices, built from definitions rather than typed by hand.

`SunSpecImage` lays out pysunspec2 models (`sunspec2.device.Model`) from 40000: the `SunS`
marker, each model's ID/L header and points, then the 0xFFFF end marker. Engineering values
go through pysunspec2's `cvalue`, so scale factors are applied exactly as a client undoes them.

`PointMapImage` lays out a non-SunSpec device from a CSV point map for the Rhombus RES-125
profile. It reads the map with the adapter's reader (`adapters.pointmap.reader`) and codes
registers with the adapter's codec (`adapters.modbus.points`), so simulator and adapter cannot
disagree about a point's layout.

Both keep their state in Python objects and render registers on demand; `write()` takes a
Modbus write and refuses (returns an error text) writes that touch a read-only register.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sunspec2 import device as ss_device

from adapters.modbus.points import (
    INT_BOUNDS,
    PointSpec,
    bytes_to_regs,
    decode_raw,
    encode_raw,
    regs_to_bytes,
)

SUNS_BASE = 40000
SUNS_MARKER = (0x5375, 0x6E53)
END_MARKER = (0xFFFF, 0x0000)
SF_INT16_UNIMPL = 0x8000

PointValue = float | int | str | None


class UnknownPoint(KeyError):
    """The device has no such model or point."""


# ---------------------------------------------------------------------------------- SunSpec
@dataclass
class _SsPoint:
    model_id: int
    name: str  # "WSet" or "PFWInj.PF" for a point in a nested group
    point: Any  # sunspec2.device.Point
    address: int  # absolute register address
    length: int
    writable: bool
    is_sf: bool
    sf_required: bool = False
    sf_point: Any = None  # the point holding this point's scale factor, resolved once
    sf_fixed: int | None = None  # a fixed scale factor (no SF point); None: SF point missing

    @cached_property
    def bounds(self) -> tuple[int, int]:
        """Raw range a value is clamped to, clear of the "not implemented" markers."""
        bits = 16 * self.length
        t = self.point.pdef.get("type", "")
        if t.startswith("int") or t == "sunssf":
            return -(1 << (bits - 1)) + 1, (1 << (bits - 1)) - 1  # keep clear of 0x8000
        return 0, (1 << bits) - 2  # keep clear of 0xFFFF


class SunSpecImage:
    """A SunSpec device: models laid out from `base`, each model once."""

    kind = "sunspec"

    def __init__(
        self,
        model_ids: Iterable[int],
        base: int = SUNS_BASE,
        model_data: dict[int, dict[str, Any]] | None = None,
    ) -> None:
        self.base = base
        self.models: dict[int, Any] = {}
        self.model_addr: dict[int, int] = {}
        self._points: dict[tuple[int, str], _SsPoint] = {}
        self._by_addr: dict[int, _SsPoint] = {}
        addr = base + 2
        for mid in model_ids:
            if mid in self.models:
                raise ValueError(f"model {mid} given twice")
            # Models with repeating groups (705 curves) need their counts up front.
            model = ss_device.Model(mid, data=(model_data or {}).get(mid))
            if model.error_info:
                raise ValueError(f"model {mid}: {model.error_info.strip()}")
            self.models[mid] = model
            self.model_addr[mid] = addr
            self._index(mid, model, addr, "")
            addr += model.len
        self.end = addr + 2  # one past the end marker
        self._cache: list[int] | None = None
        self._sf_true: dict[tuple[int, str], Any] = {}  # corrupted SF -> its real value

    def _index(self, mid: int, group: Any, model_addr: int, prefix: str) -> None:
        for name, p in group.points.items():
            writable = p.pdef.get("access") == "RW"
            ref = _SsPoint(
                mid,
                prefix + name,
                p,
                model_addr + p.offset,
                int(p.len),
                writable,
                p.pdef.get("type") == "sunssf",
                bool(p.sf_required),
            )
            if ref.sf_required:
                if p.sf is None:
                    ref.sf_fixed = int(p.sf_value) if p.sf_value is not None else 0
                else:
                    ref.sf_point = p.group.points.get(p.sf) or p.model.points.get(p.sf)
            self._points[(mid, ref.name)] = ref
            for a in range(ref.address, ref.address + ref.length):
                self._by_addr[a] = ref
        for gname, sub in group.groups.items():
            subs = sub if isinstance(sub, list) else [sub]
            for i, g in enumerate(subs):
                label = gname if len(subs) == 1 else f"{gname}.{i + 1}"
                self._index(mid, g, model_addr, f"{prefix}{label}.")

    # -- values ------------------------------------------------------------------------
    def ref(self, model: int | str, point: str) -> _SsPoint:
        try:
            return self._points[(int(model), point)]
        except (KeyError, ValueError):
            raise UnknownPoint(f"no point {model}/{point}") from None

    def has(self, model: int | str, point: str) -> bool:
        try:
            self.ref(model, point)
        except UnknownPoint:
            return False
        return True

    def get(self, model: int | str, point: str) -> PointValue:
        """Engineering value (scale factor applied); None when not implemented."""
        ref = self._points.get((model, point))  # type: ignore[arg-type]
        if ref is None:
            ref = self.ref(model, point)
        value = ref.point.value
        if value is None or not ref.sf_required:
            return value
        if ref.sf_point is not None:
            raw_sf = ref.sf_point.value
            if raw_sf is None:
                return None
            sf = int(raw_sf)
        elif ref.sf_fixed is None:
            return None
        else:
            sf = ref.sf_fixed
        if sf < 0:
            return round(float(value) * math.pow(10, sf), -sf)
        return int(value) * 10**sf

    def _true_sf(self, ref: _SsPoint) -> int | None:
        """The scale factor values are encoded with (the real one, even when corrupted)."""
        sfp = ref.sf_point
        if sfp is None:
            return ref.sf_fixed
        key = (ref.model_id, ref.point.sf)
        v = self._sf_true.get(key, sfp.value)
        return None if v is None else int(v)

    def set(self, model: int | str, point: str, value: PointValue) -> None:
        """Store an engineering value; the raw value is rounded with the point's SF."""
        ref = self._points.get((model, point))  # type: ignore[arg-type]
        if ref is None:
            ref = self.ref(model, point)
        p = ref.point
        if value is None:
            p.set_value(None)
        elif ref.sf_required:
            # Physics always writes with the real SF, so a corrupted SF register shows.
            sf = self._true_sf(ref)
            raw = round(float(value) / math.pow(10, sf or 0))
            p.set_value(self._clamp(ref, raw))
        elif isinstance(value, str):
            p.set_value(value)
        else:
            p.set_value(self._clamp(ref, round(value)))
        self._cache = None

    @staticmethod
    def _clamp(ref: _SsPoint, raw: int) -> int:
        lo, hi = ref.bounds
        return lo if raw < lo else hi if raw > hi else raw

    def get_raw(self, model: int | str, point: str) -> Any:
        return self.ref(model, point).point.value

    def set_raw(self, model: int | str, point: str, raw: Any) -> None:
        self.ref(model, point).point.set_value(raw)
        self._cache = None

    def sf_points(self, model: int | str) -> list[str]:
        return [r.name for (m, _), r in self._points.items() if m == int(model) and r.is_sf]

    def corrupt_sf(self, model: int | str, point: str, raw: int | None) -> None:
        """Serve `raw` in a scale-factor register; values keep being encoded with the real SF."""
        ref = self.ref(model, point)
        if not ref.is_sf:
            raise UnknownPoint(f"{model}/{point} is not a scale factor")
        key = (ref.model_id, point)
        self._sf_true.setdefault(key, ref.point.value)
        ref.point.set_value(raw)
        self._cache = None

    def restore_sf(self) -> None:
        for (mid, name), v in self._sf_true.items():
            self._points[(mid, name)].point.set_value(v)
        self._sf_true.clear()
        self._cache = None

    @property
    def corrupted_sf(self) -> dict[str, Any]:
        return {f"{m}/{n}": self._points[(m, n)].point.value for m, n in self._sf_true}

    # -- registers ---------------------------------------------------------------------
    def registers(self) -> list[int]:
        """The image from `base` through the end marker."""
        if self._cache is None:
            regs = list(SUNS_MARKER)
            for model in self.models.values():
                regs.extend(bytes_to_regs(model.get_mb()))
            regs.extend(END_MARKER)
            self._cache = regs
        return self._cache

    def check_write(self, address: int, count: int) -> str | None:
        for a in range(address, address + count):
            ref = self._by_addr.get(a)
            if ref is None:
                return f"register {a} is not a point"
            if not ref.writable:
                return f"{ref.model_id}/{ref.name} is read-only"
        return None

    def write(self, address: int, values: list[int]) -> list[tuple[int | str, str]]:
        """Apply a Modbus write (already checked); returns the points it changed."""
        regs = list(self.registers())
        off = address - self.base
        regs[off : off + len(values)] = values
        touched: list[_SsPoint] = []
        for a in range(address, address + len(values)):
            ref = self._by_addr[a]
            if ref not in touched:
                touched.append(ref)
        for ref in touched:
            o = ref.address - self.base
            ref.point.set_mb(regs_to_bytes(regs[o : o + ref.length]))
        self._cache = None
        return [(r.model_id, r.name) for r in touched]


# ---------------------------------------------------------------------------- point maps
class PointMapImage:
    """A non-SunSpec device laid out from a CSV point map. `model` is the profile name."""

    kind = "pointmap"

    def __init__(self, profile: str, points: Iterable[PointSpec]) -> None:
        points = list(points)
        for p in points:
            if p.type not in INT_BOUNDS:
                raise ValueError(f"{p.name}: type {p.type} is not simulated (integers only)")
        self.profile = profile
        self.points = {p.name: p for p in points}
        self.base = min(p.address for p in points)
        self.end = max(p.address + p.length for p in points)
        self._raw: dict[str, int] = {p.name: 0 for p in points}
        self._by_addr: dict[int, PointSpec] = {}
        for p in points:
            for a in range(p.address, p.address + p.length):
                if a in self._by_addr:
                    raise ValueError(f"{p.name} overlaps {self._by_addr[a].name} at {a}")
                self._by_addr[a] = p
        self._cache: list[int] | None = None

    def ref(self, model: int | str, point: str) -> PointSpec:
        if str(model) != self.profile or point not in self.points:
            raise UnknownPoint(f"no point {model}/{point}")
        return self.points[point]

    def has(self, model: int | str, point: str) -> bool:
        return str(model) == self.profile and point in self.points

    def get(self, model: int | str, point: str) -> PointValue:
        p = self.ref(model, point)
        v = self._raw[point] * p.scale + p.offset
        return int(v) if p.scale == 1 and p.offset == 0 else v

    def set(self, model: int | str, point: str, value: PointValue) -> None:
        p = self.ref(model, point)
        raw = 0 if value is None else round((float(value) - p.offset) / p.scale)
        self.set_raw(model, point, raw)

    def get_raw(self, model: int | str, point: str) -> int:
        self.ref(model, point)
        return self._raw[point]

    def set_raw(self, model: int | str, point: str, raw: Any) -> None:
        lo, hi = INT_BOUNDS[self.ref(model, point).type]
        self._raw[point] = max(lo, min(hi, int(raw)))
        self._cache = None

    def sf_points(self, model: int | str) -> list[str]:
        return []

    def corrupt_sf(self, model: int | str, point: str, raw: int | None) -> None:
        raise UnknownPoint(f"{model}/{point}: a point-map device has no scale-factor registers")

    def restore_sf(self) -> None:
        return None

    @property
    def corrupted_sf(self) -> dict[str, Any]:
        return {}

    def registers(self) -> list[int]:
        if self._cache is None:
            regs = [0] * (self.end - self.base)
            for name, p in self.points.items():
                o = p.address - self.base
                regs[o : o + p.length] = encode_raw(p, self._raw[name])
            self._cache = regs
        return self._cache

    def check_write(self, address: int, count: int) -> str | None:
        for a in range(address, address + count):
            p = self._by_addr.get(a)
            if p is None:
                return f"register {a} is not a point"
            if p.access != "RW":
                return f"{self.profile}/{p.name} is read-only"
        return None

    def write(self, address: int, values: list[int]) -> list[tuple[int | str, str]]:
        regs = list(self.registers())
        off = address - self.base
        regs[off : off + len(values)] = values
        touched: list[PointSpec] = []
        for a in range(address, address + len(values)):
            if self._by_addr[a] not in touched:
                touched.append(self._by_addr[a])
        for p in touched:
            o = p.address - self.base
            raw = decode_raw(p, regs[o : o + p.length])
            assert isinstance(raw, int)  # integer types only, checked in __init__
            self._raw[p.name] = raw
        self._cache = None
        return [(self.profile, p.name) for p in touched]


Image = SunSpecImage | PointMapImage
