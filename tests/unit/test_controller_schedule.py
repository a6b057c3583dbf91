"""The schedule: weekly windows in the site's time zone, DST included; overlaps and gaps named."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from edge.controller.errors import Refused
from edge.controller.schedule import parse_schedule

TZ = "Europe/Berlin"


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def win(name: str, start: str, end: str, days: Any = "daily", mode: str = "manual") -> dict:
    return {"name": name, "days": days, "start": start, "end": end, "mode": mode}


def at(sched: Any, t: float) -> str | None:
    e = sched.active(t)
    return None if e is None else e.window


def test_windows_follow_local_wall_time_winter_and_summer() -> None:
    s = parse_schedule(
        {"default": {"mode": "manual"}, "windows": [win("eve", "17:00", "22:00")]}, TZ
    )
    assert at(s, utc(2026, 1, 15, 16, 30)) == "eve"  # 17:30 CET
    assert at(s, utc(2026, 7, 15, 15, 30)) == "eve"  # 17:30 CEST
    assert at(s, utc(2026, 7, 15, 16, 30)) == "eve"
    assert at(s, utc(2026, 7, 15, 20, 0)) == "default"  # 22:00 CEST: the end is exclusive
    assert at(s, utc(2026, 1, 15, 15, 59)) == "default"


def test_dst_spring_forward_skips_and_fall_back_repeats_the_hour() -> None:
    s = parse_schedule(
        {"default": {"mode": "manual"}, "windows": [win("night", "02:00", "03:00")]}, TZ
    )
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST, the window does not happen
    assert at(s, utc(2026, 3, 29, 0, 59)) == "default"  # 01:59 CET
    assert at(s, utc(2026, 3, 29, 1, 0)) == "default"  # 03:00 CEST
    # 2026-10-25: 02:00-03:00 happens twice (CEST, then CET): two real hours in the window
    assert at(s, utc(2026, 10, 25, 0, 30)) == "night"  # 02:30 CEST
    assert at(s, utc(2026, 10, 25, 1, 30)) == "night"  # 02:30 CET
    assert at(s, utc(2026, 10, 25, 2, 0)) == "default"  # 03:00 CET


def test_weekday_patterns_and_a_window_past_sunday_midnight() -> None:
    body = {
        "windows": [
            win("work", "06:00", "22:00", "weekdays", "peak_shaving") | {"params": {"target_w": 1}},
            win("wknd", "06:00", "22:00", "weekends", "self_consumption"),
            win("night", "22:00", "06:00", "daily", "manual"),
        ]
    }
    s = parse_schedule(body, "UTC")  # covers the week: no default needed
    assert at(s, utc(2026, 12, 4, 12, 0)) == "work"  # friday
    assert at(s, utc(2026, 12, 5, 12, 0)) == "wknd"  # saturday
    assert at(s, utc(2026, 12, 6, 23, 0)) == "night"  # sunday night
    assert at(s, utc(2026, 12, 7, 3, 0)) == "night"  # monday 03:00, still sunday's window
    assert s.active(utc(2026, 12, 4, 12, 0)).params["target_w"] == 1  # type: ignore[union-attr]
    listed = parse_schedule(
        {"default": {"mode": "manual"}, "windows": [win("tt", "00:00", "24:00", ["tue", "thu"])]},
        "UTC",
    )
    assert at(listed, utc(2026, 12, 3, 23, 59)) == "tt"  # thursday, whole day
    assert at(listed, utc(2026, 12, 2, 12, 0)) == "default"  # wednesday


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            {
                "windows": [win("a", "08:00", "18:00"), win("b", "17:00", "19:00")],
                "default": {"mode": "manual"},
            },
            "schedule: windows 'a' and 'b' overlap at mon 17:00",
        ),
        (
            {
                "windows": [
                    win("a", "22:00", "02:00", ["sun"]),
                    win("b", "01:00", "03:00", ["mon"]),
                ],
                "default": {"mode": "manual"},
            },
            "schedule: windows 'a' and 'b' overlap at mon 01:00",
        ),
        (
            {"windows": [win("a", "00:00", "12:00"), win("b", "13:00", "24:00")]},
            "schedule: gap mon 12:00-mon 13:00 between windows 'a' and 'b' and no default",
        ),
        (
            {"windows": [win("a", "00:00", "24:00", "weekdays")]},
            "schedule: gap sat 00:00-mon 00:00 between windows 'a' and 'a' and no default",
        ),
        ({}, "schedule: no default and no windows"),
        ({"windows": [win("a", "8:00", "18:00")]}, "schedule.windows[0].start: expected 'HH:MM'"),
        ({"windows": [win("a", "08:00", "25:00")]}, "schedule.windows[0].end: expected 'HH:MM'"),
        ({"windows": [win("a", "08:00", "08:00")]}, "schedule.windows[0]: start and end are both"),
        ({"windows": [win("a", "24:00", "08:00")]}, "schedule.windows[0].start: 24:00"),
        (
            {"windows": [win("a", "08:00", "09:00", ["funday"])]},
            "schedule.windows[0].days: unknown day",
        ),
        (
            {"windows": [win("a", "08:00", "09:00", "sometimes")]},
            "schedule.windows[0].days: expected",
        ),
        (
            {"windows": [win("a", "08:00", "09:00"), win("a", "10:00", "11:00")]},
            "schedule.windows[1].name: expected a unique",
        ),
        (
            {"windows": [{**win("a", "08:00", "09:00"), "colour": 1}]},
            "schedule.windows[0]: unknown field 'colour'",
        ),
        (
            {"windows": [{**win("a", "08:00", "09:00"), "mode": "nope"}]},
            "schedule.windows[0].mode: unknown mode 'nope'",
        ),
        ({"default": {"mode": "peak_shaving"}}, "schedule.default.params.target_w"),
        ({"extra": 1}, "schedule: unknown field 'extra'"),
        ([], "schedule: expected an object"),
    ],
)
def test_bad_schedules_are_refused_naming_the_window(body: Any, needle: str) -> None:
    with pytest.raises(Refused) as exc:
        parse_schedule(body, TZ)
    assert needle in exc.value.message


def test_unknown_time_zone() -> None:
    with pytest.raises(Refused, match="tz: unknown time zone 'Mars/Olympus'"):
        parse_schedule({"default": {"mode": "manual"}}, "Mars/Olympus")


def test_site_file_schedule_is_validated_with_the_controller_section() -> None:
    from marshmallow import ValidationError

    from edge.controller.config import ControllerSchema

    bad = {"windows": [win("a", "08:00", "18:00"), win("b", "17:00", "19:00")]}
    with pytest.raises(ValidationError) as exc:
        ControllerSchema().load({"tz": TZ, "schedule": bad})
    assert "windows 'a' and 'b' overlap" in exc.value.messages["schedule"]  # type: ignore[index]
    ok = ControllerSchema().load({"tz": TZ, "schedule": {"default": {"mode": "manual"}}})
    assert ok.schedule.tz == TZ
