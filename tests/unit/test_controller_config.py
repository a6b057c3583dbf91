"""`[controller]` validation: errors name the key and the reason; unknown keys are errors."""

from __future__ import annotations

import pytest

from edge.config import ConfigError, parse_site
from edge.controller.config import ControllerSettings


def _load(**ctl: object) -> ControllerSettings:
    site = parse_site({"site": {"id": "s"}, "controller": ctl})
    assert isinstance(site.controller, ControllerSettings)
    return site.controller


def test_empty_section_gives_documented_defaults() -> None:
    s = _load()
    assert s == ControllerSettings()
    assert (s.battery, s.inverter, s.meter, s.profile) == (
        "battery",
        "inverter",
        "meter",
        "sunspec_704",
    )


@pytest.mark.parametrize(
    ("ctl", "key", "reason"),
    [
        ({"soc_hi_limit": 90}, "controller.soc_hi_limit", "Unknown field"),
        ({"soc_high_limit": 120}, "controller.soc_high_limit", "less than or equal to 100"),
        ({"profile": "tesla"}, "controller.profile", "one of"),
        ({"charge_sign": 0}, "controller.charge_sign", "one of"),
        ({"user_command_mode": "AMPS"}, "controller.user_command_mode", "one of"),
        ({"soc_recovered_level": 5}, "controller.soc_recovered_level", "strictly between"),
        ({"lease_s": 10, "refresh_s": 10}, "controller.refresh_s", "shorter than lease_s"),
        (
            {"inverter_heartbeat_count_limit": 931},
            "controller.inverter_heartbeat_count_limit",
            "below",
        ),
        ({"battery": "controller"}, "controller.battery", "reserved"),
        ({"battery": "x", "inverter": "x"}, "controller.inverter", "different"),
        ({"soc_monitor_max_time": 0}, "controller.soc_monitor_max_time", "greater than 0"),
        ({"profile_class": "nocolon"}, "controller.profile_class", "package.module:ClassName"),
        ({"max_charge_w": -1}, "controller.max_charge_w", "greater than or equal"),
    ],
)
def test_bad_values_name_key_and_reason(ctl: dict, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _load(**ctl)
    problems = dict(exc.value.problems)
    assert key in problems, exc.value.problems
    assert reason.lower() in problems[key].lower(), problems[key]


def test_meter_may_be_absent() -> None:
    assert _load(meter=None).meter is None
