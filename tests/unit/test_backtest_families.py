"""The backtest drives every inverter family through the controller's own profile.

Each family's simulated inverter takes the same cases, computed by hand here, and must give
the same figures within what its command resolution allows: 704 `WSet` in whole W (1 W),
124 `InWRte`/`OutWRte` in 0.1 % of a 100 kW `WMax` (100 W), RES-125 `MaxPowerCommand` in the
register's 0.1 kW (100 W). The profile is the controller's: a subclass configured with
`profile_class` changes what the battery does, and a write the device would not confirm is
counted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.simulator.backtest_engine import Backtest, BacktestError, Trace, kpis
from adapters.simulator.config import SimulatorSchema
from adapters.simulator.series import Series
from edge.controller.config import ControllerSettings
from edge.controller.modes.registry import load_mode
from edge.controller.plan import Plan
from edge.families.sunspec_704.profile import SunSpec704Profile
from tests.unit.test_backtest import backtest, csv

# controller profile -> (simulator profile, command resolution in W at a 100 kW rating)
FAMILIES = {
    "sunspec_704": ("sunspec", 1.0),
    "sunspec_123": ("legacy", 100.0),
    "rhombus_res125": ("res125", 100.0),
}
HOURS_2 = 7_200.0


def sim_cfg(sim_profile: str, **battery: Any) -> Any:
    bat = {"name": "battery", "kind": "battery", "capacity_wh": 20_000, "initial_soc": 60}
    inv = {"name": "inverter", "kind": "inverter", "rating_w": 100_000, "profile": sim_profile}
    return SimulatorSchema().load({"devices": [{**bat, "taper_low_soc": 1, **battery}, inv]})


def flat(w: float) -> Series:
    return Series("flat", [0.0], [w], False)


def run(family: str, mode: str, params: dict[str, Any], load_w: float, seconds: float,
        step_s: float = 1.0, **settings: Any) -> tuple[Backtest, Trace]:  # fmt: skip
    cfg = sim_cfg(FAMILIES[family][0])
    bt = Backtest(
        cfg,
        ControllerSettings(profile=family, **settings),
        load_mode(mode, params),
        flat(load_w),
        step_s=step_s,
    )
    return bt, bt.run(seconds)


@pytest.fixture(scope="module")
def shaved() -> dict[str, tuple[Backtest, Trace, dict[str, Any]]]:
    """60.03 kW flat for 2 h, target 50 kW, 20 kWh from 60 % to the 10 % floor."""
    out = {}
    for family in FAMILIES:
        bt, tr = run(family, "peak_shaving", {"target_w": 50_000}, 60_030, HOURS_2)
        out[family] = (bt, tr, kpis(tr, 20_000))
    return out


# The battery gives 10.03 kW until it has given 50 % of 20 kWh: 10 kWh / 10.03 kW.
FLOOR_T = 10_000 / 10_030 * 3600.0


@pytest.mark.parametrize("family", FAMILIES)
def test_flat_load_shaved_to_the_target_until_the_floor(
    shaved: dict[str, tuple[Backtest, Trace, dict[str, Any]]], family: str
) -> None:
    _, tr, k = shaved[family]
    resolution = FAMILIES[family][1]
    during = [g for t, g in zip(tr.t, tr.grid, strict=True) if 30 <= t <= FLOOR_T - 10]
    after = [g for t, g in zip(tr.t, tr.grid, strict=True) if t >= FLOOR_T + 10]
    assert all(abs(g - 50_000) <= resolution for g in during), (min(during), max(during))
    # the loop integrates the error: on average the import is the target, at any resolution
    assert sum(during) / len(during) == pytest.approx(50_000, abs=5)
    assert all(g == pytest.approx(60_030, abs=1e-6) for g in after)
    assert k["energy_discharged_wh"] == pytest.approx(10_000, rel=0.002)
    assert k["energy_charged_wh"] == 0
    assert k["import_wh_after"] == pytest.approx(60_030 * 2 - 10_000, rel=1e-4)
    assert k["peak_import_after_w"] == 60_030
    assert k["soc_min"] == pytest.approx(10, abs=0.05)
    assert k["bound_s"]["soc_low"] == pytest.approx(HOURS_2 - FLOOR_T, abs=15)
    assert k["bound_s"]["none"] == pytest.approx(FLOOR_T, abs=15)
    if family != "rhombus_res125":  # see test_rhombus_commands_finer_than_its_register
        assert k["write_failures"] == 0


def test_families_agree_with_each_other(
    shaved: dict[str, tuple[Backtest, Trace, dict[str, Any]]],
) -> None:
    ref = shaved["sunspec_704"][2]
    for family, (_, _, k) in shaved.items():
        for key in ("energy_discharged_wh", "import_wh_after", "equivalent_cycles"):
            assert k[key] == pytest.approx(ref[key], rel=0.001), (family, key)
        for key in ("soc_min", "soc_end"):
            assert k[key] == pytest.approx(ref[key], abs=0.02), (family, key)
        assert k["peak_import_after_w"] == ref["peak_import_after_w"]
        for bound, s in ref["bound_s"].items():
            assert k["bound_s"][bound] == pytest.approx(s, abs=5), (family, bound)


def test_rhombus_commands_are_in_its_register_steps(
    shaved: dict[str, tuple[Backtest, Trace, dict[str, Any]]],
) -> None:
    """The point map's MaxPowerCommand holds 0.1 kW, so the profile commands in those steps
    (toward 0): every write reads back as written, none would trip the controller."""
    k = shaved["rhombus_res125"][2]
    assert k["write_failures"] == 0, k.get("first_write_failure")
    assert "first_write_failure" not in k


@pytest.mark.parametrize("step_s", [1.0, 60.0])
@pytest.mark.parametrize("power_w", [5_000, -5_000])
@pytest.mark.parametrize("family", FAMILIES)
def test_constant_setpoint_holds_past_the_lease(family: str, power_w: int, step_s: float) -> None:
    """5 kW for 30 min is 2.5 kWh, with a 30 s revert timer on the 704 and 124 setpoints and
    a RES-125 heartbeat that stops the inverter 93 s after its last reset: the lease is
    rewritten and the heartbeat kept alive, between control ticks too (60 s steps)."""
    bt, tr = run(family, "manual", {"power_w": power_w}, 10_000, 1_800, step_s=step_s)
    k = kpis(tr, 20_000)
    side = "energy_discharged_wh" if power_w > 0 else "energy_charged_wh"
    assert k[side] == pytest.approx(2_500, rel=0.002)
    assert k["write_failures"] == 0  # 5 kW is a whole 0.1 kW, 5 % and W
    assert tr.battery[-1] == pytest.approx(power_w, abs=1e-6)
    assert bt.inverter.is_on()  # not reverted, heartbeat alive
    assert k["soc_end"] == pytest.approx(60 - power_w / 1000 * 0.5 / 20 * 100, abs=0.05)


def test_mismatched_profile_and_inverter_refused_naming_both_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mode = load_mode("manual", {})
    with pytest.raises(BacktestError) as e:
        Backtest(sim_cfg("legacy"), ControllerSettings(), mode, flat(1_000))
    msg = str(e.value)
    assert "controller.profile is 'sunspec_704'" in msg
    assert "simulator.devices.inverter.profile is 'legacy'" in msg
    assert "profile = 'sunspec_123'" in msg
    site = tmp_path / "site.toml"
    site.write_text(SITE.format(controller="rhombus_res125", inverter="sunspec"))
    load = csv(tmp_path, "load.csv", "time,w\n0,1000\n43200,1000\n")
    assert backtest(tmp_path, "--mode", "manual", "--load", str(load), site=site) == 2
    err = capsys.readouterr().err
    assert "controller.profile is 'rhombus_res125'" in err
    assert "simulator.devices.inverter.profile is 'sunspec'" in err
    assert not (tmp_path / "out").exists()


SITE = """
[site]
id = "bt"
[controller]
profile = "{controller}"
[simulator]
[[simulator.devices]]
name = "battery"
kind = "battery"
capacity_wh = 20000
initial_soc = 60
[[simulator.devices]]
name = "inverter"
kind = "inverter"
profile = "{inverter}"
"""


@pytest.mark.parametrize("family", ["sunspec_123", "rhombus_res125"])
def test_command_backtests_a_site_of_another_family(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], family: str
) -> None:
    """Manual 10 kW for one hour from the command line: 10 kWh, 50 % of 20 kWh."""
    site = tmp_path / "site.toml"
    site.write_text(SITE.format(controller=family, inverter=FAMILIES[family][0]))
    load = csv(tmp_path, "load.csv", "time,w\n0,20000\n3600,20000\n")
    args = ["--mode", "manual", "--params", '{"power_w": 10000}', "--load", str(load)]
    assert backtest(tmp_path, *args, "--days", str(1 / 24), "--no-plot", site=site) == 0
    k = json.loads(capsys.readouterr().out)
    assert k["energy_discharged_wh"] == pytest.approx(10_000, rel=0.002)
    assert k["soc_end"] == pytest.approx(10, abs=0.1)


class HalfPower(SunSpec704Profile):
    """A site's own profile: its inverter is told half of every setpoint."""

    def write_power(self, signed_w: float) -> Plan:
        return super().write_power(signed_w / 2)


class FractionalWatts(SunSpec704Profile):
    """Writes a WSet the register (whole W) cannot hold, checked to 0.1 W (0 W exactly)."""

    def write_power(self, signed_w: float) -> Plan:
        if not signed_w:
            return super().write_power(0.0)
        return [self.put(self.inv, "704", "WSet", int(signed_w) + 0.4, tol=0.1)]


class WritesReadOnly(SunSpec704Profile):
    def unlock(self) -> Plan:
        return [self.put(self.inv, "701", "W", 0)]


def _profile_run(cls: type, power_w: float, seconds: float) -> dict[str, Any]:
    settings = ControllerSettings(profile_class=f"{__name__}:{cls.__name__}")
    bt = Backtest(sim_cfg("sunspec"), settings, load_mode("manual", {"power_w": power_w}),
                  flat(20_000))  # fmt: skip
    return kpis(bt.run(seconds), 20_000)


def test_the_configured_profile_class_commands_the_inverter() -> None:
    """10 kW asked, 5 kW written by the site's profile, for 10 min: 833 Wh, not 1667."""
    k = _profile_run(HalfPower, 10_000, 600)
    assert k["energy_discharged_wh"] == pytest.approx(5_000 * 600 / 3600, rel=0.002)
    assert k["write_failures"] == 0


def test_writes_the_device_would_not_confirm_are_counted() -> None:
    k = _profile_run(FractionalWatts, 10_000, 600)
    # the power write at 0 s, then the lease every 10 s up to 600 s: 61 writes, none confirmed
    assert k["write_failures"] == 61
    assert k["first_write_failure"] == (
        "write inverter/704/WSet=10000.4 failed: read-back 10000 != 10000.4"
    )
    assert k["energy_discharged_wh"] == pytest.approx(10_000 * 600 / 3600, rel=0.002)


def test_a_failed_start_sequence_stops_the_backtest() -> None:
    settings = ControllerSettings(profile_class=f"{__name__}:WritesReadOnly")
    with pytest.raises(BacktestError, match=r"start sequence \(sunspec_704\), unlock: .*read_only"):
        Backtest(sim_cfg("sunspec"), settings, load_mode("manual", {}), flat(1_000))


def test_command_warns_of_unconfirmed_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site.toml"
    text = SITE.format(controller="sunspec_704", inverter="sunspec")
    site.write_text(text.replace("[simulator]", f'profile_class = "{__name__}:FractionalWatts"\n'
                                 "[simulator]"))  # fmt: skip
    load = csv(tmp_path, "load.csv", "time,w\n0,20000\n3600,20000\n")
    args = ["--mode", "manual", "--params", '{"power_w": 10000}', "--load", str(load)]
    assert backtest(tmp_path, *args, "--days", str(1 / 24), "--no-plot", site=site) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["write_failures"] == 361  # at 0 s, then every 10 s up to 3600 s
    assert "backtest: warning: 361 writes were not confirmed by read-back" in err
    assert "inverter/704/WSet=10000.4 failed" in err


@pytest.mark.parametrize(
    "controller", [{"inverter_command_mode": "CURRENT"}, {"security_code_value": 124}]
)
def test_an_inverter_left_off_by_the_start_sequence_is_refused(controller: dict[str, Any]) -> None:
    """The simulated RES-125 acts in constant power (OpMode 1) with code 125 only: a run that
    would show an idle battery is refused instead, naming the device."""
    settings = ControllerSettings(profile="rhombus_res125", **controller)
    with pytest.raises(BacktestError, match=r"simulator\.devices\.inverter: .* is not on after"):
        Backtest(sim_cfg("res125"), settings, load_mode("manual", {}), flat(1_000))
