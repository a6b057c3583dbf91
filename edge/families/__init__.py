"""Inverter families: one folder per kind of battery inverter, registered once.

A family folder (`edge/families/<name>/`) holds the family's descriptor (`FAMILY` in its
`__init__.py`) and its controller profile (`profile.py`). The simulator's physics of the same
family lives in `adapters/simulator/physics/families/<name>.py`, keyed by the same name:
`edge` never imports `adapters`, so the simulator looks the family up here, not the other
way round. Folders are found by name (every subpackage with a `FAMILY`), so adding a family
is one folder here, one physics module there, and their tests.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import cache
from typing import Any

# Grid-support functions a family's inverter may execute itself (topics.md "Grid support").
GRID_FUNCTIONS = ("volt_var", "volt_watt", "freq_watt", "pf")


@dataclass(frozen=True)
class Family:
    """What the rest of the system needs to know about one inverter family."""

    name: str  # the `[controller] profile` value, e.g. "sunspec_704"
    sim_profile: str  # the simulator's inverter `profile` value, e.g. "sunspec"
    description: str
    profile: str  # "module:Class" of the controller profile (imported on first use)
    models: tuple[int, ...] = ()  # SunSpec models the inverter serves (empty: a point map)
    pointmap: str | None = None  # built-in point map name for a non-SunSpec inverter
    fault_points: dict[str, int | str] = field(default_factory=dict)  # injectable, by model
    native_grid: frozenset[str] = frozenset()  # GRID_FUNCTIONS the inverter runs itself
    order: int = 100  # listing order (the default family first)

    def profile_class(self) -> type[Any]:
        mod, _, cls = self.profile.partition(":")
        found: type[Any] = getattr(importlib.import_module(mod), cls)
        return found


@cache
def families() -> dict[str, Family]:
    """Every family folder under this package, by name."""
    found: dict[str, Family] = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.ispkg:
            continue
        fam = getattr(importlib.import_module(f"{__name__}.{info.name}"), "FAMILY", None)
        if isinstance(fam, Family):
            if fam.name != info.name:
                raise ValueError(f"edge/families/{info.name}: FAMILY.name is {fam.name!r}")
            found[fam.name] = fam
    return dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))


def family(name: str) -> Family:
    """The family registered as `name` (KeyError naming the known ones otherwise)."""
    try:
        return families()[name]
    except KeyError:
        raise KeyError(
            f"unknown inverter family {name!r} (known: {', '.join(families())})"
        ) from None


def names() -> tuple[str, ...]:
    return tuple(families())


def sim_profiles() -> tuple[str, ...]:
    return tuple(f.sim_profile for f in families().values())


def by_sim_profile(sim_profile: str) -> Family:
    for f in families().values():
        if f.sim_profile == sim_profile:
            return f
    raise KeyError(f"no inverter family with simulator profile {sim_profile!r}")
