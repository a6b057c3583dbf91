"""The simulator's grid (V, Hz at the point of connection) and the grid support a SunSpec
inverter executes itself (705 volt-var, 706 volt-watt, 711 droop, 704 PF), stepped by hand."""

from __future__ import annotations

import math

import pytest

from adapters.simulator import InjectError, SiteSimulator
from adapters.simulator.physics.grid import Grid


def make(profile: str = "sunspec") -> SiteSimulator:
    devices = [
        {"name": "battery", "kind": "battery", "capacity_wh": 200_000, "initial_soc": 50,
         "voltage": 800, "max_charge_a": 200, "max_discharge_a": 200, "connect_delay_s": 1},
        {"name": "inverter", "kind": "inverter", "profile": profile, "rating_w": 100_000,
         "ramp_w_per_s": 2_000},
        {"name": "meter", "kind": "meter", "load_w": 30_000},
    ]  # fmt: skip
    sim = SiteSimulator({"devices": devices}, site="t")
    sim.set_value("battery", 802, "SetOp", 1)
    sim.advance(1.5)
    return sim


def hold(sim: SiteSimulator, w: float) -> None:
    for point, value in (("WSetMod", 1), ("WSet", w), ("WSetEna", 1)):
        sim.set_value("inverter", 704, point, value)


def test_grid_steps_ramps_and_profiles() -> None:
    g = Grid(277.0, 60.0)
    g.set(hz=59.5)
    assert g.hz == 59.5 and g.v == 277.0
    g.set(v=290.0, ramp_s=10)
    g.step(5)
    assert g.v == pytest.approx(283.5)
    g.step(6)
    assert g.v == pytest.approx(290.0)
    g.play([(0, 277, 60), (10, 277, 59), (20, 300, 59)])
    g.step(5)
    assert g.hz == pytest.approx(59.5)
    g.step(10)
    assert (g.v, g.hz) == (pytest.approx(288.5), pytest.approx(59.0))
    g.step(100)
    assert (g.v, g.hz) == (300.0, 59.0)
    g.release()
    assert (g.v, g.hz) == (277.0, 60.0)


def test_meter_and_inverter_read_the_injected_grid() -> None:
    sim = make()
    reply = sim.inject("meter", "grid", {"v": 290.0, "hz": 59.5})
    assert reply["v"] == 290.0 and reply["hz"] == 59.5
    sim.advance(0.1)
    assert sim.value("meter", 203, "Hz") == pytest.approx(59.5)
    assert sim.value("meter", 203, "PhVphA") == pytest.approx(290.0)
    assert sim.value("inverter", 701, "Hz") == pytest.approx(59.5)
    with pytest.raises(InjectError, match="hz"):
        sim.inject("meter", "grid", {"hz": 90})
    with pytest.raises(InjectError, match=r"profile\.1"):
        sim.inject("meter", "grid", {"profile": [[0, 277, 60], [0, 277, 59]]})
    with pytest.raises(InjectError, match="needs a meter"):
        sim.inject("inverter", "grid", {"hz": 59})
    assert sim.value("meter", 203, "Hz") == pytest.approx(59.5)  # refusals changed nothing


def test_native_droop_responds_within_rsptms_and_not_inside_the_deadband() -> None:
    sim = make()
    hold(sim, 10_000)
    sim.advance(10)
    assert sim.value("inverter", 701, "W") == pytest.approx(10_000, abs=50)
    sim.set_value("inverter", 711, "Ena", 1)
    sim.inject("meter", "grid", {"hz": 59.98})  # inside the 0.036 Hz deadband
    sim.advance(10)
    assert sim.value("inverter", 701, "W") == pytest.approx(10_000, abs=50)
    sim.inject("meter", "grid", {"hz": 59.5})  # 0.5 Hz under
    expected = 10_000 + (0.5 - 0.036) / 60 / 0.05 * 100_000  # +15.5 kW of a 100 kW rating
    rsp = sim.value("inverter", 711, "Ctl.RspTms")
    assert rsp == 5.0
    sim.advance(rsp)  # 90 % within RspTms, despite the 2 kW/s setpoint ramp
    w = sim.value("inverter", 701, "W")
    assert 10_000 + 0.9 * (expected - 10_000) - 100 <= w < expected
    sim.advance(20)
    assert sim.value("inverter", 701, "W") == pytest.approx(expected, rel=0.01)
    sim.set_value("inverter", 711, "Ena", 0)
    sim.advance(30)
    assert sim.value("inverter", 701, "W") == pytest.approx(10_000, abs=100)


def test_native_volt_var_moves_q_along_the_curve_and_volt_watt_caps() -> None:
    sim = make()
    hold(sim, 50_000)
    sim.set_value("inverter", 705, "Ena", 1)
    sim.advance(30)
    assert abs(sim.value("inverter", 701, "Var")) < 100  # 100 % V: flat part of the curve
    sim.inject("meter", "grid", {"v": 277 * 1.05})  # 105 %: between (102, 0) and (108, -44)
    sim.advance(30)
    assert sim.value("inverter", 701, "Var") == pytest.approx(-0.22 * 100_000, rel=0.02)
    assert sim.value("meter", 203, "VAR") == pytest.approx(0.22 * 100_000, rel=0.02)
    sim.set_value("inverter", 706, "Ena", 1)
    sim.inject("meter", "grid", {"v": 277 * 1.08})  # 108 %: cap at 50 % of 100 kW
    sim.advance(60)
    assert sim.value("inverter", 701, "W") == pytest.approx(50_000, abs=200)
    sim.inject("meter", "grid", {"v": 277 * 1.09})  # 109 %: cap 25 kW
    sim.advance(60)
    assert sim.value("inverter", 701, "W") == pytest.approx(25_000, rel=0.02)


def test_native_constant_power_factor() -> None:
    sim = make()
    hold(sim, 40_000)
    for point, value in (("PFWInj.PF", 0.9), ("PFWInj.Ext", 0), ("PFWInjEna", 1)):
        sim.set_value("inverter", 704, point, value)
    sim.advance(30)
    w, var = sim.value("inverter", 701, "W"), sim.value("inverter", 701, "Var")
    assert var == pytest.approx(w * math.tan(math.acos(0.9)), rel=0.01)
    assert sim.value("inverter", 701, "PF") == pytest.approx(0.9, abs=0.002)


def test_legacy_inverter_does_no_grid_support_itself() -> None:
    sim = make("legacy")
    sim.inject("meter", "grid", {"hz": 59.0, "v": 300})
    sim.advance(10)
    assert sim.value("meter", 203, "Hz") == pytest.approx(59.0)
    assert sim.device("inverter").physics.var == 0.0
