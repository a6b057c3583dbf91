"""Modes in the controller: cmd/mode, the control tick on meter data, the meter fallback,
the schedule and cmd/schedule, and `mode`/`why` on the state topic. Fake devices, fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.controller_fakes import Rig, make_rig, run

EVENING = {
    "default": {"mode": "self_consumption", "params": {"deadband_w": 200}},
    "windows": [
        {
            "name": "evening",
            "days": "daily",
            "start": "17:00",
            "end": "22:00",
            "mode": "peak_shaving",
            "params": {"target_w": 30000},
        }
    ],
}


def meter(r: Rig, w: float, fresh: bool = True) -> None:
    r.feed("meter", "203", "W", w)
    if fresh:
        r.feed("meter", "", "ts", 1.7e9 + r.clock.now)


def rig(**over: Any) -> Rig:
    r = make_rig(**over)
    r.ctl.on_status("meter", "online")
    meter(r, 0.0)
    return r


def test_peak_shaving_discharges_what_import_exceeds_and_says_why() -> None:
    async def main() -> None:
        r = rig()
        await r.to_holding()
        meter(r, 54_000)
        reply = await r.cmd("mode", {"mode": "peak_shaving", "params": {"target_w": 50_000}})
        assert reply["ok"], reply
        assert reply["mode"]["name"] == "peak_shaving"
        assert reply["mode"]["source"] == "command"
        assert reply["state"] == "discharging"
        assert r.dev.of("WSet")[-1] == 2_000  # gain 0.5 x 4 kW
        snap = r.ctl.snapshot()
        assert snap["why"] == (
            "peak_shaving: import 54.0 kW > target 50.0 kW, discharge 2.0 kW; bound by: none"
        )
        assert snap["mode"]["params"]["target_w"] == 50_000
        # the meter follows: 52 kW next; one control tick later the discharge is 3 kW
        meter(r, 52_000)
        await r.advance(1.0, soc=50)
        await r.settle()
        assert r.dev.of("WSet")[-1] == 3_000
        assert any(e["kind"] == "mode" for e in r.events)

    run(main())


def test_a_bad_mode_or_param_is_refused_and_changes_nothing() -> None:
    async def main() -> None:
        r = rig()
        await r.to_holding()
        before = r.ctl.snapshot()["mode"]
        for body, code, needle in [
            (
                {"mode": "peak_shaving", "params": {"target_w": "high"}},
                "invalid_payload",
                "params.target_w",
            ),
            ({"mode": "peak_shaving", "params": {}}, "invalid_payload", "params.target_w"),
            ({"mode": "warp"}, "out_of_range", "mode: unknown mode 'warp'"),
            ({"params": {}}, "invalid_payload", "mode: missing"),
            ({"mode": "manual", "extra": 1}, "invalid_payload", "unknown field 'extra'"),
            ({"mode": "schedule"}, "out_of_range", "no schedule is set"),
        ]:
            reply = await r.cmd("mode", body)
            assert not reply["ok"], body
            assert reply["error"]["code"] == code, reply
            assert needle in reply["error"]["message"], reply
            assert r.ctl.state == "holding"
            assert r.ctl.snapshot()["mode"] == before

    run(main())


def test_mode_is_refused_outside_the_running_states_naming_them() -> None:
    async def main() -> None:
        r = rig()
        reply = await r.cmd("mode", {"mode": "self_consumption"})
        assert reply["error"]["code"] == "not_allowed_in_state"
        assert "allowed in holding, charging, discharging" in reply["error"]["message"]

    run(main())


def test_charge_discharge_hold_are_the_manual_mode() -> None:
    async def main() -> None:
        r = rig()
        await r.to_holding()
        await r.cmd("mode", {"mode": "self_consumption"})
        await r.cmd("charge", {"power_w": 4000})
        m = r.ctl.snapshot()["mode"]
        assert (m["name"], m["params"], m["source"]) == ("manual", {"power_w": -4000.0}, "command")
        assert r.ctl.snapshot()["why"] == "manual: charge 4.0 kW as commanded; bound by: none"
        # the control tick leaves a manual command alone
        meter(r, 20_000)
        await r.advance(2.0, soc=50)
        assert r.ctl.state == "charging"
        assert r.dev.of("WSet")[-1] == -4000
        # manual through cmd/mode is the same as discharge
        reply = await r.cmd("mode", {"mode": "manual", "params": {"power_w": 3000}})
        assert reply["state"] == "discharging"
        assert r.dev.of("WSet")[-1] == 3000

    run(main())


def test_stale_or_offline_meter_falls_back_to_hold_and_resumes_by_itself() -> None:
    async def main() -> None:
        r = rig(meter_stale_s=3)
        await r.to_holding()
        meter(r, 10_000)
        await r.cmd("mode", {"mode": "self_consumption", "params": {"deadband_w": 100}})
        assert r.ctl.state == "discharging"
        # the adapter's last good poll stops advancing: stale after meter_stale_s
        await r.advance(4.0, soc=50)
        await r.settle()
        snap = r.ctl.snapshot()
        assert snap["mode"]["source"] == "fallback"
        assert snap["mode"]["name"] == "self_consumption"
        assert snap["why"].startswith("self_consumption: meter meter data 3.")
        assert "s old (> meter_stale_s 3 s), fall back to hold; bound by: none" in snap["why"]
        assert r.ctl.state == "holding"
        assert r.dev.of("WSet")[-1] == 0
        # fresh again: resumes on its own
        meter(r, 10_000)
        await r.advance(1.0, soc=50)
        await r.settle()
        assert r.ctl.snapshot()["mode"]["source"] == "command"
        assert r.ctl.state == "discharging"
        # offline: at once at the next control tick
        r.ctl.on_status("meter", "offline")
        await r.advance(1.0, soc=50)
        await r.settle()
        snap = r.ctl.snapshot()
        assert snap["mode"]["source"] == "fallback"
        assert "meter meter offline" in snap["why"]
        assert r.dev.of("WSet")[-1] == 0

    run(main())


def test_backup_reserve_binds_every_mode_manual_included() -> None:
    async def main() -> None:
        r = rig(backup_reserve_soc=40)
        await r.to_holding()
        r.bat("SoC", 40.0)
        reply = await r.cmd("discharge", {"power_w": 5000})
        assert reply["ok"]
        assert r.dev.of("WSet")[-1] == 0
        assert r.ctl.snapshot()["why"].endswith("bound by: backup_reserve")
        await r.cmd("hold")
        meter(r, 20_000)
        await r.cmd("mode", {"mode": "peak_shaving", "params": {"target_w": 10_000}})
        await r.advance(2.0, soc=40)
        assert r.ctl.state == "holding"
        assert r.dev.of("WSet")[-1] == 0
        assert r.ctl.snapshot()["why"].endswith("bound by: backup_reserve")

    run(main())


def test_schedule_from_the_site_file_picks_the_mode_by_local_time() -> None:
    async def main() -> None:
        # wall = 1.7e9 + clock: 2023-11-14 22:13 UTC = 23:13 in Berlin, outside the window
        r = rig(tz="Europe/Berlin", schedule=EVENING)
        await r.to_holding()
        await r.advance(1.0, soc=50)
        m = r.ctl.snapshot()["mode"]
        assert (m["name"], m["source"]) == ("self_consumption", "schedule")
        # a command suspends the schedule; cmd/mode "schedule" hands control back
        await r.cmd("hold")
        await r.advance(2.0, soc=50)
        assert r.ctl.snapshot()["mode"]["name"] == "manual"
        reply = await r.cmd("mode", {"mode": "schedule"})
        assert reply["ok"], reply
        assert reply["mode"]["source"] == "schedule"
        # replaced at run time: the evening window now covers 23:00
        new = {**EVENING, "windows": [{**EVENING["windows"][0], "start": "22:00", "end": "23:59"}]}
        reply = await r.cmd("schedule", {"schedule": new})
        assert reply["ok"], reply
        assert reply["mode"]["name"] == "peak_shaving"
        assert reply["schedule"]["windows"][0]["start"] == "22:00"

    run(main())


def test_a_bad_schedule_is_refused_naming_the_windows_and_keeps_the_old_one() -> None:
    async def main() -> None:
        r = rig(tz="Europe/Berlin", schedule=EVENING)
        await r.to_holding()
        await r.advance(1.0, soc=50)
        overlap = {
            "windows": [
                {"name": "day", "start": "08:00", "end": "18:00", "mode": "self_consumption"},
                {"name": "evening", "start": "17:00", "end": "08:00", "mode": "manual"},
            ]
        }
        reply = await r.cmd("schedule", {"schedule": overlap})
        assert reply["error"]["code"] == "out_of_range"
        assert "windows 'day' and 'evening' overlap at mon 17:00" in reply["error"]["message"]
        gap = {"windows": [{"name": "day", "start": "08:00", "end": "18:00", "mode": "manual"}]}
        reply = await r.cmd("schedule", {"schedule": gap})
        assert (
            "gap mon 00:00-mon 08:00 between windows 'day' and 'day'" in reply["error"]["message"]
        )
        bad = {"windows": [{**EVENING["windows"][0], "params": {"target_w": -1}}]}
        reply = await r.cmd("schedule", {"schedule": {**EVENING, **bad}})
        assert reply["error"]["message"].startswith("schedule.windows[0].params.target_w")
        assert r.ctl.snapshot()["mode"]["name"] == "self_consumption"
        assert r.ctl.schedule is not None and r.ctl.schedule.raw == EVENING
        # cleared: the controller holds, as the operator's hold would
        reply = await r.cmd("schedule", {"schedule": None})
        assert reply["ok"] and reply["schedule"] is None
        assert reply["mode"]["name"] == "manual"

    run(main())


def test_a_fallback_hold_names_its_source_and_reason_on_the_state() -> None:
    async def main() -> None:
        r = rig()
        await r.to_holding()
        await r.cmd("charge", {"power_w": 4000})
        reply = await r.cmd("hold", {"source": "fallback", "reason": "DNP3 master silent for 62 s"})
        assert reply["state"] == "holding"
        snap = r.ctl.snapshot()
        assert snap["mode"]["source"] == "fallback"
        assert snap["why"] == "manual: fallback: DNP3 master silent for 62 s; bound by: none"
        assert r.dev.of("WSet")[-1] == 0
        # the control tick keeps it (it is a hold, not a mode that recomputes)
        await r.advance(2.0, soc=50)
        assert r.ctl.snapshot()["mode"]["source"] == "fallback"
        # an operator's command afterwards is the operator's again
        await r.cmd("hold", {})
        assert r.ctl.snapshot()["mode"]["source"] == "command"

    run(main())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": "dnp3"}, "source"),
        ({"source": 1, "reason": "x"}, "source"),
        ({"source": "fallback"}, "reason"),
        ({"source": "fallback", "reason": ""}, "reason"),
        ({"source": "fallback", "reason": 5}, "reason"),
        ({"source": "fallback", "reason": "x" * 201}, "reason"),
        ({"source": "fallback", "reason": "x", "extra": 1}, "extra"),
    ],
)
def test_a_malformed_hold_source_is_refused_naming_the_field(
    body: dict[str, Any], field: str
) -> None:
    async def main() -> None:
        r = rig()
        await r.to_holding()
        await r.cmd("charge", {"power_w": 4000})
        before = r.ctl.snapshot()
        reply = await r.cmd("hold", body)
        assert reply["ok"] is False and reply["error"]["code"] == "invalid_payload", reply
        assert field in reply["error"]["message"]
        after = r.ctl.snapshot()
        assert (after["state"], after["mode"], after["why"]) == (
            before["state"],
            before["mode"],
            before["why"],
        )

    run(main())
