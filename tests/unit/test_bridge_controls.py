"""DERControl scheduling with an injected clock: supersede, cancel, status at read time."""

from __future__ import annotations

import math

import pytest

from edge.bridge.controls import (
    ACTIVE,
    CANCELLED,
    CANCELLED_RANDOM,
    SCHEDULED,
    SUPERSEDED,
    Control,
    ControlError,
    Limits,
    Schedule,
    parse_derc,
    scaled,
    wchamax_fixed_w,
)  # fmt: skip

T0 = 1_800_000_000


def ctl(start: int, duration: int, primacy: int = 1, created: int = T0, mrid: str = "") -> Control:
    return Control(
        mrid or f"{start:X}{primacy}", created, start, duration, {"opModFixedW": 0}, primacy
    )


def test_status_is_computed_from_the_clock() -> None:
    c = ctl(T0 + 10, 20)
    assert c.status(T0) == SCHEDULED
    assert c.status(T0 + 10) == ACTIVE
    assert c.status(T0 + 29) == ACTIVE
    assert c.status(T0 + 30) is None  # over: no longer listed


def test_overlap_supersedes_from_the_new_events_start() -> None:
    s = Schedule()
    old = ctl(T0, 100, mrid="A1")
    s.add(old, T0)
    new = ctl(T0 + 50, 100, created=T0 + 5, mrid="B2")
    assert s.add(new, T0 + 5) == ["A1"]
    assert old.status(T0 + 10) == ACTIVE  # still in force until the new one starts
    assert old.status(T0 + 50) == SUPERSEDED
    assert [c.mrid for c in s.listed(1, T0 + 60)] == ["A1", "B2"]  # superseded stays listed
    assert [c.mrid for c in s.active(1, T0 + 60)] == ["B2"]


def test_no_supersede_without_overlap_or_across_programs() -> None:
    s = Schedule()
    a = ctl(T0, 10, mrid="A1")
    s.add(a, T0)
    assert s.add(ctl(T0 + 10, 10, mrid="B1"), T0) == []  # touching, not overlapping
    assert s.add(ctl(T0, 10, primacy=2, mrid="C2"), T0) == []  # another program
    assert a.status(T0 + 1) == ACTIVE
    assert s.primacies() == {1, 2}


def test_cancel_keeps_the_event() -> None:
    s = Schedule()
    c = ctl(T0 + 100, 10, mrid="C1")
    s.add(c, T0)
    s.cancel("c1", T0 + 1)
    assert c.status(T0 + 2) == CANCELLED
    assert s.listed(1, T0 + 2) == [c]
    r = ctl(T0 + 100, 10, mrid="D1")
    r.randomize_start = 30
    s.add(r, T0 + 3)
    s.cancel("D1", T0 + 4)
    assert r.status(T0 + 5) == CANCELLED_RANDOM
    with pytest.raises(ControlError, match="no control"):
        s.cancel("FFFF", T0)
    with pytest.raises(ControlError, match="ended"):
        s.cancel("C1", T0 + 1000)


def test_wchamax_to_opmodfixedw() -> None:
    assert wchamax_fixed_w(2500, 5000.0) == -5000
    assert wchamax_fixed_w(5000, 5000.0) == -10000
    assert wchamax_fixed_w(0, 5000.0) == 0  # B12: zero is a setpoint, not "nothing"
    assert wchamax_fixed_w(0.0, 5000.0) == 0
    with pytest.raises(ControlError, match="setMaxChargeRateW yet") as e:
        wchamax_fixed_w(100, None)
    assert e.value.code == "device_error"
    for bad, code in ((5001, "out_of_range"), (-1, "out_of_range"), (True, "invalid_payload"),
                      ("5", "invalid_payload"), (math.nan, "invalid_payload")):  # fmt: skip
        with pytest.raises(ControlError) as e:
            wchamax_fixed_w(bad, 5000.0)
        assert e.value.code == code


def test_parse_derc_fields_and_errors() -> None:
    c = parse_derc(
        {"duration": 60, "opModTargetW": -2500, "rampTms": 100, "randomizeStart": 10, "primacy": 3},
        T0,
        1,
        Limits(max_w=6000, max_charge_w=5000),
    )
    assert (c.start, c.duration, c.primacy, c.randomize_start) == (T0, 60, 3, 10)
    assert c.base == {"opModTargetW": -2500.0, "rampTms": 100}
    cases = [
        ({"opModConnect": True}, "duration: required"),
        ({"duration": 0, "opModConnect": True}, "duration: 0 outside"),
        ({"duration": 5}, "at least one"),
        ({"duration": 5, "opModFixedFlow": 1}, "opModFixedFlow: unknown"),
        ({"duration": 5, "opModFixedW": -10001}, "opModFixedW: -10001 outside"),
        ({"duration": 5, "opModConnect": 1}, "opModConnect: expected true or false"),
        ({"duration": 5, "opModTargetW": 7000}, "above setMaxW"),
        ({"duration": 5, "opModTargetW": -5001}, "setMaxChargeRateW"),
        ({"duration": 5, "opModMaxLimW": 50, "randomizeStart": 4000}, "randomizeStart"),
        ({"duration": 5.5, "opModConnect": True}, "duration: expected an integer"),
        ({"start": T0 - 100, "duration": 50, "opModConnect": True}, "already be over"),
    ]
    for body, match in cases:
        with pytest.raises(ControlError, match=match):
            parse_derc(body, T0, 1, Limits(max_w=6000, max_charge_w=5000))


@pytest.mark.parametrize("w", [0, 1, -1, 32767, 32768, 123456, -5000.5, 0.25, 1e9])
def test_scaled_fits_int16_and_keeps_the_value(w: float) -> None:
    mult, val = scaled(w)
    assert -32767 <= val <= 32767
    assert val * 10.0**mult == pytest.approx(w, rel=1e-4, abs=1e-3)
