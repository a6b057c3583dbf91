"""Each package owns its site-file section; edge's loader knows them only by entry point."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import edge
from edge.config import ConfigError, parse_site
from edge.config.site import registered_sections

EDGE = Path(edge.__file__).parent


def test_sections_come_from_their_packages() -> None:
    owners = {name: make.__module__ for name, make in registered_sections().items()}
    assert owners["devices"] == "adapters.modbus.config"
    assert owners["simulator"] == "adapters.simulator.config"
    assert owners["controller"] == "edge.controller.config"
    assert owners["bridge"] == "edge.bridge.config"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_edge_config_imports_no_section_owner() -> None:
    for path in (EDGE / "config").glob("*.py"):
        bad = {
            m
            for m in _imports(path)
            if m.startswith(("adapters", "edge.bridge", "edge.controller"))
        }
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_edge_never_imports_adapters() -> None:
    for path in EDGE.rglob("*.py"):
        bad = {m for m in _imports(path) if m.split(".")[0] == "adapters"}
        assert not bad, f"{path.relative_to(EDGE.parent)} imports {sorted(bad)}"


def test_moved_section_errors_still_name_key_path() -> None:
    with pytest.raises(ConfigError) as err:
        parse_site(
            {"site": {"id": "s"}, "devices": [{"name": "m", "kind": "sunspec", "port": 0}]},
            "site.toml",
        )
    assert "site.toml: devices.0.port:" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_site({"site": {"id": "s"}, "simulator": {"time_scale": 0}}, "site.toml")
    assert "site.toml: simulator.time_scale:" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_site({"site": {"id": "s"}, "nosuch": {}}, "site.toml")
    assert "site.toml: nosuch: Unknown field." in str(err.value)
