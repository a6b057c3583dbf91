"""`bess-edge` with the [sparkplug] and [homeassistant] sections: off unless present, bad
values refused with exit code 2 naming the key, found by `run` through their entry points."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import main
from edge.config import load_site
from edge.services import service_factories


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "site.toml"
    p.write_text('[site]\nid = "s1"\n' + text)
    return str(p)


def test_sections_are_services_of_run_only_when_present(tmp_path: Path) -> None:
    factories = service_factories()
    assert {"sparkplug", "homeassistant"} <= set(factories)
    bare = load_site(write(tmp_path, ""))
    assert factories["sparkplug"](bare) == [] and factories["homeassistant"](bare) == []
    on = load_site(write(tmp_path, "[sparkplug]\n[homeassistant]\n"))
    assert [s.name for s in factories["sparkplug"](on)] == ["sparkplug"]
    assert [s.name for s in factories["homeassistant"](on)] == ["homeassistant"]
    off = load_site(
        write(tmp_path, "[sparkplug]\nenabled = false\n[homeassistant]\nenabled = false\n")
    )
    assert factories["sparkplug"](off) == [] and factories["homeassistant"](off) == []


def test_a_missing_section_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sparkplug", "-c", write(tmp_path, "")]) == 2
    assert "nothing to run" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, key",
    [
        ('[sparkplug]\ngroup_id = "a/b"\n', "sparkplug.group_id"),
        ("[sparkplug]\npublish_interval_s = -1\n", "sparkplug.publish_interval_s"),
        ('[homeassistant]\npoints = {soc = "x"}\n', "homeassistant.points"),
        ("[homeassistant]\nmode_params = {warp = {}}\n", "homeassistant.mode_params"),
    ],
)
def test_bad_sections_exit_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    assert main(["check-config", "-c", write(tmp_path, text)]) == 2
    assert key in capsys.readouterr().err
