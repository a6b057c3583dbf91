"""Model layouts from pysunspec2's definitions: every point of a discovered model, with its
absolute address, type, scale-factor reference and topic key. Pure (no I/O).

pysunspec2's `device.Model` does the layout work (repeating-group counts from the model
length or a count point, the 65-register legacy model 1); we walk its groups and points.
Devices do not always declare the length the definition has: a shorter model keeps the
points that fit (the rest are `missing`), a longer one has its tail ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sunspec2 import device as ss_device

from adapters.modbus.points import PointSpec, regs_to_bytes
from edge.mqtt.topics import model_key

# Vendor models: ids are assigned per vendor, so a definition shipped for one vendor's model
# says nothing reliable about another vendor's model with the same id. Never decoded.
VENDOR_IDS = range(64000, 65535)


class LayoutError(ValueError):
    pass


class UnknownModel(LayoutError):
    """No usable definition: an unknown or a vendor model id."""

    def __init__(self, model_id: int, reason: str) -> None:
        super().__init__(f"model {model_id}: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class ModelLayout:
    """One model instance found on a device."""

    model_id: int
    instance: int  # 1 for the first model with this id, 2 for the second, ...
    address: int  # address of the model's ID register
    length: int  # L: registers after the ID/L header, as the device declares it
    points: tuple[PointSpec, ...]  # the points inside L (read and published)
    missing: tuple[PointSpec, ...] = ()  # defined points beyond a short L (always null)
    defined_length: int = 0  # what the definition lays out for this device (without header)

    @property
    def key(self) -> str:
        return model_key(self.model_id, self.instance)


def _symbols(pdef: dict[str, Any]) -> frozenset[int] | None:
    syms = pdef.get("symbols")
    if not syms or pdef.get("type") not in ("enum16", "enum32"):
        return None
    return frozenset(int(s["value"]) for s in syms)


def _size(gdef: dict[str, Any]) -> tuple[int, int]:
    """(fixed registers, registers of one repeat) of a group definition, header included."""
    fixed = sum(int(p.get("size", 0)) for p in gdef.get("points", ()))
    repeat = 0
    for sub in gdef.get("groups", ()):
        f, r = _size(sub)
        if sub.get("count") is not None and sub.get("count") != 1:
            repeat += f  # a repeating group (count from L or from a count point)
        else:
            fixed += f
        repeat += r
    return fixed, repeat


def unusable(model_id: int) -> str | None:
    """Why a model id cannot be decoded (so its registers need not be read), or None."""
    if model_id in VENDOR_IDS:
        return "vendor model"
    try:
        ss_device.get_model_def(model_id)
    except Exception:  # pysunspec2 raises bare errors for ids it has no file for
        return "no definition in pysunspec2"
    return None


def _model(model_id: int, length: int, regs: list[int]) -> tuple[Any, int]:
    """pysunspec2's model for a device-declared length; (model, length laid out)."""
    reason = unusable(model_id)
    if reason is not None:
        raise UnknownModel(model_id, reason)
    model_def = ss_device.get_model_def(model_id)
    data = regs_to_bytes(regs)
    try:
        return ss_device.Model(model_id=model_id, model_len=length, data=data), length
    except Exception as first:
        fixed, repeat = _size(model_def["group"])
        fixed -= 2  # ID and L are not part of L
        count = max(0, (length - fixed) // repeat) if repeat else 0
        fitted = fixed + count * repeat
        if fitted == length:
            raise LayoutError(f"model {model_id}: {first}") from first
        pad = regs + [0] * max(0, fitted + 2 - len(regs))
        try:
            model = ss_device.Model(
                model_id=model_id, model_len=fitted, data=regs_to_bytes(pad[: fitted + 2])
            )
        except Exception as exc:
            raise LayoutError(f"model {model_id} with L={length}: {exc}") from exc
        return model, fitted


def build_layout(
    model_id: int, address: int, length: int, regs: list[int], instance: int = 1
) -> ModelLayout:
    """Lay out a model from its registers (`regs` starts at the ID register, L+2 long).

    The registers are needed because a repeating group's count can be a point of the model.
    Raises UnknownModel for ids without a usable definition.
    """
    model, laid_out = _model(model_id, length, regs)
    mkey = model_key(model_id, instance)
    specs: list[PointSpec] = []
    _walk(model, model, mkey, address, "", specs)
    end = address + 2 + length
    inside = tuple(p for p in specs if p.end <= end)
    missing = tuple(p for p in specs if p.end > end)
    defined = max((p.end for p in specs), default=address + 2) - address - 2
    del laid_out  # the definition's own extent is what `defined_length` reports
    return ModelLayout(model_id, instance, address, length, inside, missing, defined)


def _walk(model: Any, group: Any, mkey: str, base: int, path: str, out: list[PointSpec]) -> None:
    for name, p in group.points.items():
        pdef = p.pdef
        sf = pdef.get("sf")
        sf_key: str | None = None
        sf_const: int | None = None
        if sf is not None:
            try:
                sf_const = int(sf)
            except (TypeError, ValueError):
                # pysunspec2 looks in the point's own group first, then the model's top level.
                sf_key = f"{mkey}/{path}{sf}" if sf in group.points else f"{mkey}/{sf}"
        out.append(
            PointSpec(
                key=f"{mkey}/{path}{name}",
                model=mkey,
                name=name,
                address=base + int(p.offset),
                length=int(p.len),
                type=pdef["type"],
                access="RW" if pdef.get("access") == "RW" else "R",
                unit=pdef.get("units"),
                sunspec=True,
                sf_key=sf_key,
                sf_const=sf_const,
                symbols=_symbols(pdef),
            )
        )
    for gname, sub in group.groups.items():
        if isinstance(sub, list):
            for i, g in enumerate(sub, start=1):
                _walk(model, g, mkey, base, f"{path}{gname}/{i}/", out)
        else:
            _walk(model, sub, mkey, base, f"{path}{gname}/", out)
