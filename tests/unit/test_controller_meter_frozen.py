"""A frozen meter in the controller: the adapter keeps polling (fresh `ts`), the meter's W stays
exactly the same while the inverter's measured W moves. Peak shaving falls back to hold, says
so on the state (`mode.source`, `why`, a `mode` event), and resumes once the reading moves."""

from __future__ import annotations

from typing import Any

from tests.unit.controller_fakes import Rig, make_rig, run


def rig(**over: Any) -> Rig:
    r = make_rig(**over)
    r.ctl.on_status("meter", "online")
    return r


async def poll(r: Rig, seconds: float, meter_w: float, inverter_w: float | None = None) -> None:
    """Every 0.5 s: a fresh meter poll reading `meter_w`, and the inverter's measured W
    following the setpoint written (or `inverter_w`)."""
    end = r.clock.now + seconds
    while r.clock.now < end - 1e-9:
        r.feed("meter", "203", "W", meter_w)
        r.feed("meter", "", "ts", 1.7e9 + r.clock.now)
        wset = r.dev.of("WSet")
        w = inverter_w if inverter_w is not None else (wset[-1] if wset else 0.0)
        r.feed("inverter", "701", "W", float(w))
        await r.advance(0.5, soc=50)
        await r.settle()


def test_peak_shaving_holds_on_a_frozen_meter_and_resumes_when_it_moves() -> None:
    async def main() -> None:
        r = rig(meter_frozen_s=10)
        await r.to_holding()
        await poll(r, 1.0, 54_000)
        reply = await r.cmd("mode", {"mode": "peak_shaving", "params": {"target_w": 50_000}})
        assert reply["ok"] and reply["state"] == "discharging", reply
        # the reading sticks at 54 kW: the integrator keeps raising the discharge, the
        # inverter follows, the meter does not budge
        await poll(r, 4.0, 54_000)
        assert r.ctl.snapshot()["mode"]["source"] == "command"
        assert r.dev.of("WSet")[-1] >= 6_000
        await poll(r, 10.0, 54_000)
        snap = r.ctl.snapshot()
        assert snap["mode"]["source"] == "fallback", snap
        assert snap["mode"]["name"] == "peak_shaving"
        assert snap["why"].startswith("peak_shaving: meter meter frozen: W 54000 unchanged for 1")
        assert "while battery power moved" in snap["why"]
        assert snap["why"].endswith(", fall back to hold; bound by: none")
        assert r.ctl.state == "holding"
        assert r.dev.of("WSet")[-1] == 0
        started = [e for e in r.events if e["kind"] == "mode" and "frozen" in e["reason"]]
        assert len(started) == 1 and started[0]["source"] == "fallback"
        # still stuck while the battery goes back to 0: it stays on hold
        await poll(r, 5.0, 54_000)
        assert r.ctl.snapshot()["mode"]["source"] == "fallback"
        # the reading moves again (44 kW: the load fell meanwhile): peak shaving resumes
        await poll(r, 1.5, 44_000)
        snap = r.ctl.snapshot()
        assert snap["mode"]["source"] == "command", snap
        assert snap["why"].startswith("peak_shaving: import 44.0 kW <= target 50.0 kW")
        assert any(e["kind"] == "mode" and e["reason"] == "meter back" for e in r.events)

    run(main())


def test_a_steady_reading_with_a_steady_battery_is_not_frozen() -> None:
    async def main() -> None:
        r = rig(meter_frozen_s=10)
        await r.to_holding()
        await poll(r, 1.0, 40_000)
        await r.cmd("mode", {"mode": "peak_shaving", "params": {"target_w": 50_000}})
        await poll(r, 60.0, 40_000)  # below the target, holding: nothing moves, nothing judged
        snap = r.ctl.snapshot()
        assert snap["mode"]["source"] == "command", snap
        assert snap["why"].startswith("peak_shaving: import 40.0 kW <= target 50.0 kW, hold")

    run(main())


def test_meter_frozen_s_zero_switches_the_check_off() -> None:
    async def main() -> None:
        r = rig(meter_frozen_s=0)
        await r.to_holding()
        await poll(r, 1.0, 54_000)
        await r.cmd("mode", {"mode": "peak_shaving", "params": {"target_w": 50_000}})
        await poll(r, 20.0, 54_000)
        assert r.ctl.snapshot()["mode"]["source"] == "command"
        assert r.ctl.state == "discharging"

    run(main())


def test_meter_frozen_s_is_validated_like_meter_stale_s() -> None:
    import pytest
    from marshmallow import ValidationError

    from edge.controller.config import ControllerSchema

    assert ControllerSchema().load({}).meter_frozen_s == 10.0
    for bad in (-1, 3601, "soon"):
        with pytest.raises(ValidationError) as e:
            ControllerSchema().load({"meter_frozen_s": bad})
        assert "meter_frozen_s" in e.value.messages


def test_a_stale_meter_gives_one_event_as_the_fallback_starts_and_one_as_it_ends() -> None:
    async def main() -> None:
        r = rig(meter_stale_s=3)
        await r.to_holding()
        await poll(r, 1.0, 54_000)
        await r.cmd("mode", {"mode": "peak_shaving", "params": {"target_w": 50_000}})
        await r.advance(12.0, soc=50)  # no poll: the meter's age grows every tick
        await r.settle()
        snap = r.ctl.snapshot()
        assert snap["mode"]["source"] == "fallback"
        assert "s old (> meter_stale_s 3 s)" in snap["why"]
        await poll(r, 1.5, 54_000)
        reasons = [e["reason"] for e in r.events if e["kind"] == "mode"][1:]  # after the command
        assert len(reasons) == 2, reasons
        assert reasons[0].startswith("meter meter data 3.") and reasons[1] == "meter back"

    run(main())
