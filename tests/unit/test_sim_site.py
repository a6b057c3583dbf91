"""The simulated site: load, PV, the meter's balance, energy counters, time scale, meter faults.

Stepped by hand (`advance`) or by an injected clock; no sockets. The register values are
read through `sim.value`, i.e. decoded with the scale factors a client would apply.
"""

from __future__ import annotations

import asyncio
import math
import statistics
from typing import Any

import pytest
from marshmallow import ValidationError

from adapters.simulator import InjectError, SiteSimulator
from adapters.simulator.config import SimulatorSchema

BAT = {
    "name": "battery",
    "kind": "battery",
    "capacity_wh": 100_000,
    "initial_soc": 50,
    "connect_delay_s": 0,
}
INV = {"name": "inverter", "kind": "inverter", "rating_w": 100_000, "ramp_w_per_s": 1e6}
PV = {"name": "pv", "kind": "pv", "rating_w": 60_000}
METER = {"name": "meter", "kind": "meter", "load_w": 40_000}
NOON = 12 * 3600.0


def site(*devices: dict[str, Any], **top: Any) -> SiteSimulator:
    return SiteSimulator({"devices": list(devices), **top}, site="t")


def discharge(sim: SiteSimulator, w: float) -> None:
    sim.set_value("battery", 802, "SetOp", 1)
    sim.set_value("inverter", 704, "WSetEna", 1)
    sim.set_value("inverter", 704, "WSet", w)


def test_meter_balance_grid_is_load_minus_pv_minus_battery() -> None:
    sim = site(BAT, INV, PV, METER, start_s=NOON)
    discharge(sim, 10_000)
    sim.advance(2)
    pv = sim.value("pv", 701, "W")
    assert pv == pytest.approx(60_000, abs=10)  # clear sky at solar noon: the rating
    assert sim.value("inverter", 701, "W") == pytest.approx(10_000, abs=10)
    # 40 kW load - 60 kW PV - 10 kW battery = 30 kW export
    assert sim.value("meter", 203, "W") == pytest.approx(-30_000, abs=10)
    sim.set_value("inverter", 704, "WSet", -25_000)  # charge from the PV surplus
    sim.advance(2)
    assert sim.value("meter", 203, "W") == pytest.approx(5_000, abs=10)


def test_pv_clear_sky_day_and_night() -> None:
    sim = site(PV, start_s=0.0)
    assert sim.value("pv", 701, "W") == 0
    assert sim.value("pv", 701, "InvSt") == 7  # STANDBY at night
    sim.advance(9 * 3600)  # 09:00: a quarter of the way through a 06:00-18:00 half sine
    want = 60_000 * math.sin(math.pi * 3 / 12)
    assert sim.value("pv", 701, "W") == pytest.approx(want, abs=10)
    assert sim.value("pv", 701, "InvSt") == 3  # RUNNING
    sim.advance(10 * 3600)  # 19:00
    assert sim.value("pv", 701, "W") == 0


def test_pv_irradiance_profile_is_interpolated_and_capped() -> None:
    pv = {**PV, "irradiance_profile": [[0, 0], [36_000, 500], [43_200, 1200], [86_400, 0]]}
    sim = site(pv, start_s=32_400)  # 09:00: 9/10 of the way from 0 to 500 W/m2
    assert sim.value("pv", 701, "W") == pytest.approx(60_000 * 0.45, abs=10)
    sim.advance(3 * 3600 + 1)  # just past noon: 1200 W/m2 would be 72 kW, capped at 60 kW
    assert sim.value("pv", 701, "W") == pytest.approx(60_000, abs=10)


def test_cloud_injection_shades_then_passes() -> None:
    sim = site(PV, start_s=NOON)
    r = sim.inject("pv", "cloud", {"depth": 0.75, "duration_s": 60})
    assert r["W"] == pytest.approx(15_000, abs=10)  # at once, not at the next step
    assert r["faults"]["cloud"]["depth"] == 0.75
    sim.advance(30)
    assert sim.value("pv", 701, "W") == pytest.approx(15_000, abs=20)
    sim.advance(31)
    assert sim.value("pv", 701, "W") == pytest.approx(60_000, abs=20)
    for bad, code in (({"depth": 2}, "out_of_range"), ({"depth": "x"}, "invalid_payload")):
        with pytest.raises(InjectError) as e:
            sim.inject("pv", "cloud", bad)
        assert e.value.code == code and "depth" in e.value.message
    with pytest.raises(InjectError) as e:
        sim.inject("pv", "load", {"step_w": 1})
    assert e.value.message == "device pv: load needs a meter"


def test_random_clouds_are_seeded_transients() -> None:
    def day(seed: int) -> list[float]:
        pv = {**PV, "cloud_per_h": 6, "cloud_depth": 0.8, "cloud_s": 120}
        sim = site(pv, start_s=10 * 3600, seed=seed)
        out = []
        for _ in range(4 * 360):  # 4 hours around noon, every 10 s
            sim.advance(10)
            out.append(float(sim.value("pv", 701, "W") or 0))
        return out

    a, b, c = day(1), day(1), day(2)
    assert a == b  # deterministic for a seed
    assert a != c
    clear = site(PV, start_s=10 * 3600)
    shaded = 0
    for w in a:
        clear.advance(10)
        sky = float(clear.value("pv", 701, "W") or 0)
        assert w <= sky + 10
        shaded += w < 0.5 * sky
    # 6 clouds/h of 2 min mean: about a fifth of the time shaded; clearly neither 0 nor all
    assert 0.05 < shaded / len(a) < 0.5


def test_load_noise_is_seeded_with_the_configured_spread() -> None:
    def trace(seed: int) -> list[float]:
        meter = {**METER, "load_noise_w": 2_000, "load_noise_tau_s": 30}
        sim = site(meter, seed=seed)
        out = []
        for _ in range(3000):
            sim.advance(10)
            out.append(float(sim.value("meter", 203, "W") or 0))
        return out

    a = trace(7)
    assert a == trace(7)
    assert a != trace(8)
    assert statistics.mean(a) == pytest.approx(40_000, abs=300)
    assert statistics.pstdev(a) == pytest.approx(2_000, rel=0.15)


def test_load_steps_injected_at_run_time() -> None:
    sim = site(BAT, INV, METER)
    r = sim.inject("meter", "load", {"step_w": 20_000})
    assert r["load_w"] == 60_000
    assert sim.value("meter", 203, "W") == pytest.approx(60_000, abs=10)  # at once
    assert r["faults"]["load"] == {"step_w": 20_000}
    r = sim.inject("meter", "load", {"w": 5_000})
    assert sim.value("meter", 203, "W") == pytest.approx(5_000, abs=10)
    assert r["faults"]["load"] == {"step_w": 20_000, "w": 5_000}
    sim.inject("meter", "load", {"w": None})
    sim.advance(1)
    assert sim.value("meter", 203, "W") == pytest.approx(60_000, abs=10)
    sim.inject("meter", "clear")
    assert sim.value("meter", 203, "W") == pytest.approx(40_000, abs=10)
    assert "load" not in sim.inject("meter", "get", {"model": 203, "point": "W"})["faults"]
    for bad, code in (
        ({}, "invalid_payload"),
        ({"step_w": "lots"}, "invalid_payload"),
        ({"w": -1}, "out_of_range"),
        ({"step_w": float("nan")}, "invalid_payload"),
    ):
        with pytest.raises(InjectError) as e:
            sim.inject("meter", "load", bad)
        assert e.value.code == code
    assert sim.value("meter", 203, "W") == pytest.approx(40_000, abs=10)  # nothing changed


def test_energy_counters_on_every_device() -> None:
    sim = site(BAT, INV, PV, METER, start_s=NOON)
    discharge(sim, 20_000)
    sim.advance(1800)  # half an hour: 20 kW -> 10 kWh, load 20 kWh, PV a little under 30 kWh
    assert sim.value("inverter", 701, "TotWhInj") == pytest.approx(10_000, abs=20)
    pv_wh = float(sim.value("pv", 701, "TotWhInj") or 0)
    assert pv_wh == pytest.approx(60_000 * 0.5 * 0.997, rel=0.002)  # sine mean 12:00-12:30
    exported = float(sim.value("meter", 203, "TotWhExp") or 0)
    assert exported == pytest.approx(1 + pv_wh + 10_000 - 20_000, abs=20)
    assert sim.value("meter", 203, "TotWhImp") == 1
    sim.set_value("inverter", 704, "WSet", -100_000)  # 100 kW charge: import 140 kW - PV
    sim.advance(900)
    assert sim.value("inverter", 701, "TotWhAbs") == pytest.approx(25_000, abs=20)
    pv_wh = float(sim.value("pv", 701, "TotWhInj") or 0) - pv_wh
    imported = float(sim.value("meter", 203, "TotWhImp") or 0)
    assert imported == pytest.approx(1 + 140_000 / 4 - pv_wh, abs=20)


def test_counters_keep_small_steps() -> None:
    """10 kW in 0.05 s steps is 0.14 Wh a step: the counters must not round it away."""
    sim = site(BAT, INV, {**METER, "load_w": 10_000})
    discharge(sim, 10_000)
    for _ in range(2_400):  # two minutes in 50 ms steps
        sim.advance(0.05)
    assert sim.value("inverter", 701, "TotWhInj") == pytest.approx(10_000 / 30, abs=1.5)
    assert sim.value("meter", 203, "TotWhImp") == 1  # import 0: the battery covers the load


def test_battery_counts_equivalent_cycles_and_legacy_wh() -> None:
    bat = {**BAT, "capacity_wh": 10_000, "initial_soc": 100, "taper_low_soc": 1}
    inv = {**INV, "profile": "legacy"}
    sim = site(bat, inv)
    sim.set_value("battery", 802, "SetOp", 1)
    sim.set_value("inverter", 124, "StorCtl_Mod", 2)
    sim.set_value("inverter", 124, "OutWRte", 20.0)  # 20 kW
    sim.advance(3600 * 0.45)  # 9 kWh of 10: not a full cycle yet
    assert sim.value("battery", 802, "NCyc") == 0
    assert sim.value("inverter", 103, "WH") == pytest.approx(1 + 9_000, abs=20)
    sim.set_value("inverter", 124, "StorCtl_Mod", 1)
    sim.set_value("inverter", 124, "InWRte", 20.0)  # charge back, then discharge again
    sim.advance(3600 * 0.45)
    sim.set_value("inverter", 124, "StorCtl_Mod", 2)
    sim.advance(3600 * 0.1)
    assert sim.value("battery", 802, "NCyc") == 1  # 11 kWh discharged of 10 kWh


def test_load_and_pv_follow_the_time_scale() -> None:
    """60 clock seconds at time_scale 60 are an hour of load profile and of sun."""
    now = [0.0]
    meter = {"name": "meter", "kind": "meter", "load_profile": [[0, 1000], [3000, 9000], [7200, 0]]}
    sim = SiteSimulator(
        {"time_scale": 60, "step_s": 0.01, "start_s": 6 * 3600, "devices": [PV, meter]},
        clock=lambda: now[0],
    )

    async def main() -> None:
        await sim.start()
        try:
            now[0] += 40.0  # 2400 simulated seconds: profile step at 3000 not reached
            await asyncio.sleep(0.05)
            assert sim.value("meter", 203, "W") == pytest.approx(1000 - _pv(sim), abs=10)
            now[0] += 20.0  # 3600 s
            await asyncio.sleep(0.05)
            assert sim.sim_time == pytest.approx(3600)
            pv = 60_000 * math.sin(math.pi * 1 / 12)  # 07:00
            assert _pv(sim) == pytest.approx(pv, abs=10)
            assert sim.value("meter", 203, "W") == pytest.approx(9000 - pv, abs=10)
        finally:
            await sim.stop()

    asyncio.run(asyncio.wait_for(main(), 5))


def _pv(sim: SiteSimulator) -> float:
    return float(sim.value("pv", 701, "W") or 0)


def test_stale_meter_sticks_while_the_site_goes_on() -> None:
    meter = {
        "name": "meter",
        "kind": "meter",
        "load_profile": [[0, 10_000], [100, 30_000], [200, 0]],
    }
    sim = site(BAT, INV, meter)
    sim.advance(50)
    sim.inject("meter", "stale", {"on": True})
    sim.advance(100)  # t=150: the load is 30 kW now, the reading still says 10 kW
    assert sim.value("meter", 203, "W") == pytest.approx(10_000, abs=10)
    sim.inject("meter", "load", {"step_w": 5_000})
    assert sim.value("meter", 203, "W") == pytest.approx(10_000, abs=10)
    sim.inject("meter", "stale", {"on": False})
    sim.advance(1)
    assert sim.value("meter", 203, "W") == pytest.approx(35_000, abs=10)  # profile on time


def test_pv_inverter_fault_stops_output() -> None:
    sim = site(PV, start_s=NOON)
    r = sim.inject("pv", "inverter_fault", {"point": "Alrm", "value": 1})
    assert r["faults"]["inverter_fault"] == {"Alrm": 1}
    assert sim.value("pv", 701, "W") == 0
    sim.advance(10)
    assert sim.value("pv", 701, "W") == 0
    sim.inject("pv", "inverter_fault", {"point": "Alrm", "value": None})
    sim.advance(1)
    assert sim.value("pv", 701, "W") == pytest.approx(60_000, abs=10)


@pytest.mark.parametrize(
    ("device", "field", "message"),
    [
        ({**METER, "rating_w": 1}, "rating_w", "not a meter option"),
        ({**PV, "load_w": 1}, "load_w", "not a pv option"),
        ({**PV, "cloud_per_h": 1, "capacity_wh": 5}, "capacity_wh", "not a pv option"),
        ({**PV, "sunrise_s": 70_000}, "sunrise_s", "must be before sunset_s"),
        ({**PV, "cloud_depth": 1.5}, "cloud_depth", "less than or equal to 1"),
        ({**PV, "irradiance_profile": [[0, 1], [0, 2]]}, "irradiance_profile", "increase"),
        ({**PV, "irradiance_profile": [[90_000, 1]]}, "irradiance_profile", "after midnight"),
        ({**PV, "profile": "legacy"}, "profile", "must be one of sunspec"),
        ({**METER, "load_noise_w": -1}, "load_noise_w", "greater than or equal"),
    ],
)
def test_site_options_refused_with_the_key_named(
    device: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as e:
        SimulatorSchema().load({"devices": [device]})
    errors = e.value.messages["devices"][0]  # type: ignore[index]
    assert field in errors and message in " ".join(errors[field])


def test_top_level_start_and_seed_validated() -> None:
    with pytest.raises(ValidationError) as e:
        SimulatorSchema().load({"start_s": 90_000})
    assert "start_s" in e.value.messages
