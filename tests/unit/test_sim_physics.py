"""Simulator physics, stepped by hand (`advance`) or by an injected clock: no sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.simulator import InjectError, SiteSimulator

BAT = {
    "name": "battery",
    "kind": "battery",
    "capacity_wh": 100_000,
    "initial_soc": 50,
    "voltage": 800,
    "max_charge_a": 100,
    "max_discharge_a": 100,
    "connect_delay_s": 2,
}


def make(
    inv: dict[str, Any] | None = None, bat: dict[str, Any] | None = None, **top: Any
) -> SiteSimulator:
    devices = [
        {**BAT, **(bat or {})},
        {
            "name": "inverter",
            "kind": "inverter",
            "rating_w": 100_000,
            "ramp_w_per_s": 10_000,
            **(inv or {}),
        },
        {"name": "meter", "kind": "meter", "load_w": 30_000},
    ]
    return SiteSimulator({"devices": devices, **top}, site="t")


def connect(sim: SiteSimulator) -> None:
    sim.set_value("battery", 802, "SetOp", 1)
    sim.advance(2.5)
    assert sim.value("battery", 802, "State") == 3


def test_connect_sequence_and_disconnect() -> None:
    sim = make()
    assert sim.value("battery", 802, "State") == 1
    sim.set_value("battery", 802, "SetOp", 1)
    sim.advance(0.5)
    assert sim.value("battery", 802, "State") == 2  # INITIALIZING during connect_delay_s
    sim.advance(1.0)
    assert sim.value("battery", 802, "State") == 2
    sim.advance(0.6)
    assert sim.value("battery", 802, "State") == 3
    sim.set_value("battery", 802, "SetOp", 2)
    assert sim.value("battery", 802, "State") == 1


def test_setpoint_followed_with_ramp_and_soc_integrates() -> None:
    sim = make()
    connect(sim)
    sim.set_value("inverter", 704, "WSetMod", 1)
    sim.set_value("inverter", 704, "WSet", 50_000)
    sim.set_value("inverter", 704, "WSetEna", 1)
    sim.advance(1.0)
    assert sim.value("inverter", 701, "W") == pytest.approx(10_000, abs=100)  # 10 kW/s ramp
    sim.advance(2.0)
    assert sim.value("inverter", 701, "W") == pytest.approx(30_000, abs=100)
    sim.advance(2.0)
    assert sim.value("inverter", 701, "W") == pytest.approx(50_000, abs=100)
    sim.advance(10.0)
    assert sim.value("inverter", 701, "W") == pytest.approx(50_000, abs=100)  # holds target
    assert sim.value("battery", 802, "W") == pytest.approx(50_000, abs=100)
    assert sim.value("meter", 203, "W") == pytest.approx(30_000 - 50_000, abs=100)  # exporting
    # SoC: discharge 50 kW for one hour of 100 kWh = -50 % (minus the ramp-up energy).
    soc0 = float(sim.value("battery", 802, "SoC"))  # type: ignore[arg-type]
    sim.advance(360.0)  # 0.1 h at 50 kW = 5 kWh = 5 %
    assert float(sim.value("battery", 802, "SoC")) == pytest.approx(soc0 - 5.0, abs=0.15)  # type: ignore[arg-type]
    # Charge: negative WSet.
    sim.set_value("inverter", 704, "WSet", -20_000)
    sim.advance(10.0)
    assert sim.value("inverter", 701, "W") == pytest.approx(-20_000, abs=100)
    assert sim.value("battery", 802, "ChaSt") == 4


def test_no_power_unless_connected_and_limits_respected() -> None:
    sim = make()
    sim.set_value("inverter", 704, "WSet", 50_000)
    sim.set_value("inverter", 704, "WSetEna", 1)
    sim.advance(10)
    assert sim.value("inverter", 701, "W") == 0  # battery DISCONNECTED
    connect(sim)
    sim.set_value("inverter", 704, "WSet", 500_000)  # beyond rating and battery limit
    sim.advance(20)
    assert sim.value("inverter", 701, "W") == pytest.approx(80_000, abs=100)  # 100 A * 800 V
    sim.inject("battery", "state", {"value": 99})
    sim.advance(0.1)
    assert sim.value("inverter", 701, "W") == 0  # FAULT: contactor open, no ramp down


def test_limits_taper_near_full_and_empty() -> None:
    sim = make()
    assert sim.value("battery", 802, "AChaMax") == pytest.approx(100)
    sim.set_value("battery", 802, "SoC", 95.0)  # halfway between 90 and 100
    assert sim.value("battery", 802, "AChaMax") == pytest.approx(50, abs=0.5)
    assert sim.value("battery", 802, "WChaRteMax") == pytest.approx(40_000, abs=200)
    assert sim.value("battery", 802, "ADisChaMax") == pytest.approx(100)
    sim.set_value("battery", 802, "SoC", 100.0)
    assert sim.value("battery", 802, "AChaMax") == 0
    sim.set_value("battery", 802, "SoC", 5.0)
    assert sim.value("battery", 802, "ADisChaMax") == pytest.approx(50, abs=0.5)
    assert sim.value("battery", 802, "WDisChaRteMax") == pytest.approx(40_000, abs=200)
    assert sim.value("battery", 802, "AChaMax") == pytest.approx(100)
    # Discharging into the empty zone: power follows the shrinking limit.
    connect(sim)
    sim.set_value("inverter", 704, "WSet", 80_000)
    sim.set_value("inverter", 704, "WSetEna", 1)
    sim.advance(30)
    w = float(sim.value("inverter", 701, "W"))  # type: ignore[arg-type]
    assert 0 < w <= float(sim.value("battery", 802, "WDisChaRteMax")) + 100  # type: ignore[arg-type]


def test_revert_timer_drops_setpoint() -> None:
    sim = make()
    connect(sim)
    sim.set_value("inverter", 704, "WSetRvrtTms", 5)
    sim.set_value("inverter", 704, "WSet", 20_000)
    sim.set_value("inverter", 704, "WSetEna", 1)
    sim.advance(4.0)
    assert sim.value("inverter", 704, "WSetEna") == 1
    assert sim.value("inverter", 704, "WSetRvrtRem") == 1
    sim.set_value("inverter", 704, "WSet", 20_000)  # refresh: the lease starts again
    sim.advance(4.0)
    assert sim.value("inverter", 704, "WSetEna") == 1
    assert sim.value("inverter", 701, "W") == pytest.approx(20_000, abs=100)
    sim.advance(1.5)
    assert sim.value("inverter", 704, "WSetEna") == 0
    assert sim.value("inverter", 704, "WSet") == 0
    sim.advance(3)
    assert sim.value("inverter", 701, "W") == 0


def test_legacy_profile_storctl_and_revert() -> None:
    sim = make({"profile": "legacy"})
    connect(sim)
    sim.set_value("inverter", 124, "InOutWRte_RvrtTms", 10)
    sim.set_value("inverter", 124, "OutWRte", 30.0)  # % of WMax 100 kW
    sim.set_value("inverter", 124, "StorCtl_Mod", 0b10)  # DISCHARGE
    sim.advance(5)
    assert sim.value("inverter", 103, "W") == pytest.approx(30_000, abs=100)
    sim.set_value("inverter", 124, "InWRte", 10.0)
    sim.set_value("inverter", 124, "StorCtl_Mod", 0b01)  # CHARGE 10 % of WChaMax
    sim.advance(5)
    assert sim.value("inverter", 103, "W") == pytest.approx(-10_000, abs=100)
    sim.advance(6)  # no refresh for > 10 s
    assert sim.value("inverter", 124, "StorCtl_Mod") == 0
    sim.advance(3)
    assert sim.value("inverter", 103, "W") == 0
    sim.set_value("inverter", 123, "WMaxLimPct_RvrtTms", 3)
    sim.set_value("inverter", 123, "WMaxLim_Ena", 1)
    sim.advance(3.5)
    assert sim.value("inverter", 123, "WMaxLim_Ena") == 0


def test_res125_heartbeat_counts_down_and_stops_inverter() -> None:
    sim = make({"profile": "res125"})
    connect(sim)
    sim.set_value("inverter", "res125", "SecurityCode", 125)
    sim.set_value("inverter", "res125", "OpMode", 1)
    sim.set_value("inverter", "res125", "Heartbeat", 931)
    sim.set_value("inverter", "res125", "MaxPowerCommand", -25.0)  # kW, negative = charge
    sim.advance(5.0)
    assert sim.value("inverter", "res125", "Heartbeat") == 931 - 50
    assert sim.value("inverter", "res125", "RawGridACPower") == pytest.approx(-25.0)
    assert sim.value("battery", 802, "W") == pytest.approx(-25_000, abs=100)
    sim.set_value("inverter", "res125", "Heartbeat", 20)
    sim.advance(1.0)
    assert sim.value("inverter", "res125", "Heartbeat") == 10
    sim.advance(1.5)
    assert sim.value("inverter", "res125", "Heartbeat") == 0
    assert sim.value("inverter", "res125", "RawGridACPower") == 0  # watchdog expired


def test_res125_locked_inverter_does_not_move() -> None:
    sim = make({"profile": "res125"})
    connect(sim)
    sim.set_value("inverter", "res125", "OpMode", 1)
    sim.set_value("inverter", "res125", "MaxPowerCommand", 25.0)
    sim.advance(5.0)
    assert sim.value("inverter", "res125", "RawGridACPower") == 0


def test_meter_load_profile_repeats() -> None:
    sim = SiteSimulator(
        {
            "devices": [
                {
                    "name": "meter",
                    "kind": "meter",
                    "load_profile": [[0, 1000], [10, 5000], [20, 1000]],
                }
            ]
        }
    )
    assert sim.value("meter", 203, "W") == 1000
    sim.advance(12)
    assert sim.value("meter", 203, "W") == 5000
    sim.advance(10)  # t=22 -> 2 within the 20 s period
    assert sim.value("meter", 203, "W") == 1000


def test_alarm_reset_clears_latched_not_forced() -> None:
    sim = make()
    sim.inject("battery", "alarm", {"bit": 3, "on": True})
    sim.inject("battery", "alarm", {"bit": 5, "on": True, "latch": True})
    assert sim.value("battery", 802, "Evt1") == (1 << 3) | (1 << 5)
    sim.set_value("battery", 802, "AlmRst", 1)
    assert sim.value("battery", 802, "Evt1") == 1 << 3
    assert sim.value("battery", 802, "AlmRst") == 0
    sim.inject("battery", "clear")
    assert sim.value("battery", 802, "Evt1") == 0


def test_inject_refuses_bad_requests() -> None:
    sim = make()
    with pytest.raises(InjectError) as e:
        sim.inject("battery", "alarm", {"bit": 40, "on": True})
    assert e.value.code == "out_of_range" and "bit" in e.value.message
    with pytest.raises(InjectError) as e:
        sim.inject("meter", "state", {"value": 99})
    assert e.value.code == "invalid_payload"
    with pytest.raises(InjectError) as e:
        sim.inject("battery", "explode", {})
    assert e.value.code == "unknown_command"
    with pytest.raises(InjectError) as e:
        sim.inject("nope", "clear", {})
    assert e.value.code == "unknown_device"
    with pytest.raises(InjectError) as e:
        sim.inject("battery", "corrupt_sf", {"model": 802, "point": "SoC", "value": 2})
    assert e.value.code == "unknown_point"


def test_stale_freezes_physics() -> None:
    sim = make()
    sim.inject("battery", "stale", {"on": True})
    sim.set_value("battery", 802, "SetOp", 1)
    sim.advance(5)
    hb = sim.value("battery", 802, "Hb")
    sim.advance(5)
    assert sim.value("battery", 802, "Hb") == hb
    assert sim.value("battery", 802, "State") == 2  # stuck in INITIALIZING: nothing moves
    sim.inject("battery", "stale", {"on": False})
    sim.advance(3)
    assert sim.value("battery", 802, "State") == 3


def test_time_scale_with_injected_clock() -> None:
    """The background loop turns clock seconds into time_scale x simulated seconds."""
    now = [1000.0]
    sim = SiteSimulator({"time_scale": 60, "step_s": 0.01, "devices": [BAT]}, clock=lambda: now[0])

    async def main() -> None:
        await sim.start()
        try:
            sim.set_value("battery", 802, "SetOp", 1)
            now[0] += 0.05  # 3 simulated seconds > connect_delay_s 2
            await asyncio.sleep(0.1)
            assert sim.value("battery", 802, "State") == 3
            assert sim.sim_time == pytest.approx(3.0)
        finally:
            await sim.stop()

    asyncio.run(asyncio.wait_for(main(), 5))


@pytest.mark.parametrize(
    ("profile", "point", "value", "model", "wpoint"),
    [
        ("sunspec", "St", 0, 701, "W"),
        ("legacy", "Evt1", 1, 103, "W"),
        ("res125", "MIUF2Summary", 8, "res125", "RawGridACPower"),
    ],
)
def test_inverter_fault_stops_power_per_profile(
    profile: str, point: str, value: int, model: int | str, wpoint: str
) -> None:
    sim = make({"profile": profile})
    connect(sim)
    if profile == "sunspec":
        sim.set_value("inverter", 704, "WSet", 10_000)
        sim.set_value("inverter", 704, "WSetEna", 1)
    elif profile == "legacy":
        sim.set_value("inverter", 124, "OutWRte", 10.0)
        sim.set_value("inverter", 124, "StorCtl_Mod", 0b10)
    else:
        for name, v in (("SecurityCode", 125), ("OpMode", 1), ("MaxPowerCommand", 10.0)):
            sim.set_value("inverter", "res125", name, v)
    sim.advance(3)
    assert float(sim.value("inverter", model, wpoint) or 0) > 0  # type: ignore[arg-type]
    sim.inject("inverter", "inverter_fault", {"point": point, "value": value})
    sim.advance(0.1)
    assert sim.value("inverter", model, wpoint) == 0
    assert sim.value("battery", 802, "W") == 0
    sim.inject("inverter", "clear")
    sim.advance(3)
    assert float(sim.value("inverter", model, wpoint) or 0) > 0  # type: ignore[arg-type]


def test_soc_integrates_under_time_scale_with_injected_clock() -> None:
    """One clock second at time_scale 3600 is an hour: 10 kW from 100 kWh is -10 % SoC."""
    now = [0.0]
    devices = [
        {**BAT, "connect_delay_s": 0},
        {"name": "inverter", "kind": "inverter", "ramp_w_per_s": 1e9},
    ]
    cfg = {"time_scale": 3600, "step_s": 0.01, "devices": devices}
    sim = SiteSimulator(cfg, clock=lambda: now[0])

    async def main() -> None:
        await sim.start()
        try:
            sim.set_value("battery", 802, "SetOp", 1)
            sim.set_value("inverter", 704, "WSet", 10_000)
            sim.set_value("inverter", 704, "WSetEna", 1)
            for _ in range(10):
                now[0] += 0.1
                await asyncio.sleep(0.03)
            await asyncio.sleep(0.05)
            assert sim.sim_time == pytest.approx(3600.0)
            assert sim.value("battery", 802, "SoC") == pytest.approx(40.0, abs=0.15)
        finally:
            await sim.stop()

    asyncio.run(asyncio.wait_for(main(), 5))


def test_contactor_open_and_faults_stop_power_at_once() -> None:
    """No step in between: a reader right after the write/injection already sees 0 W."""
    sim = make()
    connect(sim)
    sim.set_value("inverter", 704, "WSet", 20_000)
    sim.set_value("inverter", 704, "WSetEna", 1)
    sim.advance(5)
    assert sim.value("inverter", 701, "W") == pytest.approx(20_000, abs=100)
    sim.set_value("battery", 802, "SetOp", 2)
    assert sim.value("inverter", 701, "W") == 0
    assert sim.value("battery", 802, "W") == 0
    assert sim.device("inverter").physics.power_w == 0  # type: ignore[union-attr]
    connect(sim)
    sim.advance(5)
    assert sim.value("inverter", 701, "W") == pytest.approx(20_000, abs=100)
    sim.inject("inverter", "inverter_fault", {"point": "Alrm", "value": 1})
    assert sim.value("inverter", 701, "W") == 0
    sim.inject("inverter", "clear")
    sim.advance(5)
    sim.inject("battery", "state", {"value": 99})
    assert sim.value("inverter", 701, "W") == 0


def test_revert_timer_counts_clock_seconds_under_time_scale() -> None:
    """At time_scale 20, a 5 s lease lapses after 5 clock seconds = 100 simulated seconds."""
    sim = make(time_scale=20)
    connect(sim)
    sim.set_value("inverter", 704, "WSetRvrtTms", 5)
    sim.set_value("inverter", 704, "WSet", 20_000)
    sim.set_value("inverter", 704, "WSetEna", 1)
    sim.advance(90)  # 4.5 clock seconds
    assert sim.value("inverter", 704, "WSetEna") == 1
    sim.advance(20)
    assert sim.value("inverter", 704, "WSetEna") == 0


def test_invst_fault_injection_and_release() -> None:
    sim = make()
    connect(sim)
    sim.set_value("inverter", 704, "WSet", 10_000)
    sim.set_value("inverter", 704, "WSetEna", 1)
    sim.advance(3)
    r = sim.inject("inverter", "inverter_fault", {"point": "InvSt", "value": 6})
    assert r["faults"] == {"inverter_fault": {"InvSt": 6}}
    assert sim.value("inverter", 701, "InvSt") == 6
    assert sim.value("inverter", 701, "W") == 0
    assert sim.value("inverter", 701, "St") == 1  # untouched
    sim.inject("inverter", "inverter_fault", {"point": "InvSt", "value": None})
    sim.advance(3)
    assert sim.value("inverter", 701, "InvSt") == 3  # RUNNING again
    assert sim.value("inverter", 701, "W") == pytest.approx(10_000, abs=100)
