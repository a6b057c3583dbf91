"""`bess-edge backtest --grid grid.csv`: grid support over recorded V and Hz, its energy
and response, checked against arithmetic done here; and the refusals of a bad grid file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.simulator.backtest_engine import Backtest, kpis
from adapters.simulator.grid_series import read_grid
from adapters.simulator.series import Series, SeriesError
from edge.controller.config import ControllerSchema
from edge.controller.modes.registry import load_mode
from tests.unit.test_backtest import backtest, csv, sim_cfg, site_file

GRID = {"rating_w": 100_000, "freq_watt": {"enabled": True}}


def test_under_frequency_excursion_books_droop_energy_and_response(tmp_path: Path) -> None:
    """59.5 Hz from 600 s to 900 s: the droop adds (0.5 - 0.036) / 60 / 0.05 x 100 kW =
    15.47 kW of discharge for 300 s = 1289 Wh, on top of the hold."""
    g = csv(tmp_path, "grid.csv", "time,v,hz\n0,277,60\n600,277,59.5\n900,277,60\n3600,277,60\n")
    settings = ControllerSchema().load({"grid": GRID})
    mode = load_mode("manual", {"power_w": 0})
    bt = Backtest(sim_cfg(capacity_wh=1e6), settings, mode, Series("l", [0.0], [30_000.0], False),
                  grid=read_grid(g))  # fmt: skip
    k = kpis(bt.run(3600), 1e6)
    delta = (0.5 - 0.036) / 60 / 0.05 * 100_000
    assert k["grid_support_s"] == {"freq_watt": pytest.approx(300, abs=1)}
    assert k["grid_support_wh"] == pytest.approx(delta * 300 / 3600, rel=0.01)
    assert k["energy_discharged_wh"] == pytest.approx(delta * 300 / 3600, rel=0.02)
    assert k["freq_events"] == 1
    assert 0 < k["freq_response_p50_s"] <= 3  # 1 s steps, the inverter ramps 50 kW/s


def test_command_reports_grid_kpis_and_refuses_bad_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = site_file(tmp_path)
    site.write_text(
        site.read_text()
        + "\n[controller.grid]\nrating_w = 100000\nfreq_watt = { enabled = true }\n"
    )
    load = csv(tmp_path, "load.csv", "time,w\n0,30000\n3600,30000\n")
    g = csv(tmp_path, "grid.csv", "0,277,60\n600,277,59.5\n900,277,60\n3600,277,60\n")
    rc = backtest(tmp_path, "--mode", "manual", "--params", '{"power_w": 0}', "--load", str(load),
                  "--grid", str(g), "--days", str(1 / 24), "--no-plot", site=site)  # fmt: skip
    assert rc == 0
    k = json.loads((tmp_path / "out" / "kpis.json").read_text())
    assert k["freq_events"] == 1 and k["grid_support_wh"] > 1000
    capsys.readouterr()
    bad = csv(tmp_path, "bad.csv", "0,277,60\n600,277,99\n")
    rc = backtest(tmp_path, "--mode", "manual", "--params", '{"power_w": 0}', "--load", str(load),
                  "--grid", str(bad), "--days", str(1 / 24), "--no-plot", site=site)  # fmt: skip
    assert rc == 2
    assert "bad.csv:2: frequency '99': must lie in 40..70" in capsys.readouterr().err


def test_grid_file_refusals(tmp_path: Path) -> None:
    with pytest.raises(SeriesError, match=r"g\.csv:2: expected 3 columns"):
        read_grid(csv(tmp_path, "g.csv", "0,277,60\n1,277\n"))
    with pytest.raises(SeriesError, match="not after the row before"):
        read_grid(csv(tmp_path, "g.csv", "0,277,60\n0,277,60\n"))
