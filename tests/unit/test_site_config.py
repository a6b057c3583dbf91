"""The site file loader names the file, the key path and the reason; the CLI exits non-zero."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import EXIT_CONFIG, main
from edge.config import ConfigError, load_site, parse_site
from edge.demo import render_demo_site


def test_minimal_site_gets_defaults() -> None:
    site = parse_site({"site": {"id": "demo"}})
    assert site.site == "demo"
    assert (site.broker.host, site.broker.port, site.broker.keepalive) == ("127.0.0.1", 1883, 5)


def test_errors_name_file_key_and_reason(tmp_path: Path) -> None:
    p = tmp_path / "site.toml"
    p.write_text('[site]\nid = "Bad Id"\n[broker]\nport = 70000\ncolour = "red"\n')
    with pytest.raises(ConfigError) as e:
        load_site(p)
    text = str(e.value)
    assert f"{p}: site.id: must match" in text
    assert f"{p}: broker.port:" in text
    assert f"{p}: broker.colour: Unknown field." in text


def test_missing_site_section_and_toml_syntax(tmp_path: Path) -> None:
    p = tmp_path / "a.toml"
    p.write_text("[broker]\nport = 1\n")
    with pytest.raises(ConfigError, match="site: Missing data"):
        load_site(p)
    p.write_text("[site\nid=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_site(p)


def test_cli_exits_non_zero_on_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('[site]\nid = "ok"\nextra = 1\n')
    assert main(["check-config", "-c", str(p)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "site.extra: Unknown field." in err


def test_rendered_demo_site_is_valid(tmp_path: Path) -> None:
    site_file = render_demo_site(tmp_path)
    site = load_site(site_file)
    assert [d.name for d in site.devices] == ["battery", "inverter", "meter", "pv"]
    assert site.controller is not None and site.simulator is not None
    assert main(["check-config", "-c", str(site_file)]) == 0


def test_demo_without_openssl_drops_only_the_bridge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("edge.demo.openssl_available", lambda: False)
    site = load_site(render_demo_site(tmp_path))
    assert site.bridge is None
    assert site.controller is not None and len(site.devices) == 4


def test_soc_monitor_must_outlast_the_battery_refresh() -> None:
    doc = {
        "site": {"id": "s"},
        "devices": [{"name": "battery", "kind": "sunspec", "refresh_s": 30}],
        "controller": {"soc_monitor_max_time": 30},
    }
    with pytest.raises(ConfigError, match=r"controller\.soc_monitor_max_time: must be greater"):
        parse_site(doc)
    doc["controller"] = {"soc_monitor_max_time": 31}
    assert parse_site(doc).controller.soc_monitor_max_time == 31
