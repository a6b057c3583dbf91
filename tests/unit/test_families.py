"""Inverter families are registered once: descriptor, controller profile, simulator physics."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from adapters.simulator.config import PROFILES as SIM_PROFILES
from adapters.simulator.physics.families import all_physics
from adapters.simulator.physics.families.base import FamilyPhysics
from edge.controller.config import PROFILES
from edge.controller.profiles import Profile
from edge.families import family, names

ROOT = Path(__file__).resolve().parents[2]


def test_every_family_has_a_profile_and_physics() -> None:
    assert names() == ("sunspec_704", "sunspec_123", "rhombus_res125")
    physics = all_physics()
    assert set(physics) == set(names())
    for name in names():
        fam = family(name)
        cls = fam.profile_class()
        assert issubclass(cls, Profile) and cls.name == name
        assert issubclass(physics[name], FamilyPhysics)
        assert physics[name].family() is fam
        assert (ROOT / "adapters/simulator/physics/families" / f"{name}.py").exists()


def test_config_lists_come_from_the_registry() -> None:
    assert names() == PROFILES
    assert SIM_PROFILES["inverter"] == tuple(family(n).sim_profile for n in names())


def test_unknown_family_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="sunspec_704"):
        family("tesla")


def test_no_profile_branches_left_in_the_shared_physics() -> None:
    """The generic inverter never asks which family it is (the point of the registry)."""
    src = (ROOT / "adapters/simulator/physics/inverter.py").read_text()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Compare):
            names_in = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            assert "profile" not in names_in, ast.unparse(node)


def test_edge_never_imports_adapters() -> None:
    for path in (ROOT / "edge").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("adapters"), path
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("adapters") for a in node.names), path


def test_rhombus_commands_in_the_point_maps_steps_toward_zero() -> None:
    """MaxPowerCommand holds 0.1 kW (res125 point map): a finer command would read back
    rounded and fail its confirmation, and rounding up could exceed the limit."""
    from edge.controller.profiles import profile_class
    from edge.controller.telemetry import Telemetry
    from tests.unit.controller_fakes import FakeClock, settings

    s = settings(profile="rhombus_res125")
    prof = profile_class(s)(s, None, Telemetry(FakeClock()))
    got = {w: prof.write_power(w)[0].value for w in (5015.0, -5015.0, 300.0, 99.0, 20_000.0)}
    assert got == {5015.0: 5.0, -5015.0: -5.0, 300.0: 0.3, 99.0: 0.0, 20_000.0: 20.0}
