"""Simulator physics of each inverter family, one module per family, named as the family
is registered in `edge.families` (the simulator looks families up there by its `profile`)."""

from __future__ import annotations

import importlib

from adapters.simulator.physics.families.base import FamilyPhysics
from edge.families import by_sim_profile, families


def physics_class(sim_profile: str) -> type[FamilyPhysics]:
    """The physics of the family whose simulator profile is `sim_profile`."""
    name = by_sim_profile(sim_profile).name
    cls = getattr(importlib.import_module(f"{__name__}.{name}"), "PHYSICS", None)
    if not (isinstance(cls, type) and issubclass(cls, FamilyPhysics)):
        raise TypeError(f"{__name__}.{name}: PHYSICS is not a FamilyPhysics subclass")
    return cls


def all_physics() -> dict[str, type[FamilyPhysics]]:
    """Every registered family's physics, by family name."""
    return {n: physics_class(f.sim_profile) for n, f in families().items()}


__all__ = ["FamilyPhysics", "all_physics", "physics_class"]
