"""Model layouts from pysunspec2's definitions: every point of a discovered model, with its
absolute address, type, scale-factor reference and topic key. Pure (no I/O).

pysunspec2's `device.Model` does the layout work (repeating-group counts from the model
length or a count point, the 65-register legacy model 1); we walk its groups and points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sunspec2 import device as ss_device

from adapters.modbus.points import PointSpec, regs_to_bytes
from edge.mqtt.topics import model_key


class LayoutError(ValueError):
    pass


@dataclass(frozen=True)
class ModelLayout:
    """One model instance found on a device."""

    model_id: int
    instance: int  # 1 for the first model with this id, 2 for the second, ...
    address: int  # address of the model's ID register
    length: int  # L: registers after the ID/L header
    points: tuple[PointSpec, ...]

    @property
    def key(self) -> str:
        return model_key(self.model_id, self.instance)


def _symbols(pdef: dict[str, Any]) -> frozenset[int] | None:
    syms = pdef.get("symbols")
    if not syms or pdef.get("type") not in ("enum16", "enum32"):
        return None
    return frozenset(int(s["value"]) for s in syms)


def build_layout(
    model_id: int, address: int, length: int, regs: list[int], instance: int = 1
) -> ModelLayout:
    """Lay out a model from its registers (`regs` starts at the ID register, L+2 long).

    The registers are needed because a repeating group's count can be a point of the model.
    """
    try:
        model = ss_device.Model(model_id=model_id, model_len=length, data=regs_to_bytes(regs))
    except Exception as exc:  # pysunspec2 raises bare ModelError/KeyError on odd models
        raise LayoutError(f"model {model_id} at {address}: {exc}") from exc
    if model.model_def is None:
        raise LayoutError(f"model {model_id} at {address}: no definition in pysunspec2")
    mkey = model_key(model_id, instance)
    specs: list[PointSpec] = []
    _walk(model, model, mkey, address, "", specs)
    if specs and specs[-1].end > address + length + 2:
        raise LayoutError(
            f"model {model_id} at {address}: definition needs {specs[-1].end - address} registers,"
            f" device declares {length + 2}"
        )
    return ModelLayout(model_id, instance, address, length, tuple(specs))


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
