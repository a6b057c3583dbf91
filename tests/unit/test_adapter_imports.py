"""`adapters.sunspec` and `adapters.modbus` share leaf modules, not each other: the Modbus
errors and the point codec import nothing of the project, and SunSpec discovery uses only
those two from `adapters.modbus`."""

from __future__ import annotations

import ast
from pathlib import Path

import adapters

ADAPTERS = Path(adapters.__file__).parent
LEAVES = {"adapters.modbus.errors", "adapters.modbus.points"}


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_errors_and_codec_are_leaves() -> None:
    for mod in LEAVES:
        path = ADAPTERS.parent / (mod.replace(".", "/") + ".py")
        own = {m for m in _imports(path) if m.split(".")[0] in ("adapters", "edge")}
        assert not own, f"{mod} imports {sorted(own)}"


def test_sunspec_uses_only_the_leaves_of_modbus() -> None:
    for path in (ADAPTERS / "sunspec").glob("*.py"):
        used = {m for m in _imports(path) if m.startswith("adapters.modbus")}
        assert used <= LEAVES, f"{path.name} imports {sorted(used - LEAVES)}"


def test_modbus_errors_have_one_home() -> None:
    for path in ADAPTERS.rglob("*.py"):
        if path.name == "errors.py":
            continue
        tree = ast.parse(path.read_text())
        classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
        dup = classes & {"ReadRefused", "DeviceTimeout", "DeviceGone", "BadAnswer"}
        assert not dup, f"{path.relative_to(ADAPTERS)} defines {sorted(dup)}"
