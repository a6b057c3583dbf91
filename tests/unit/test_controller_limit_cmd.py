"""cmd/limit, the operator's run-time active power limit: one more term of the min(), so it
only ever lowers the limits in force; named in `limits.source` and `why` when it binds;
bad values refused naming the field, nothing changed. Fake devices, fake clock."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.controller.limits import compute_limits
from tests.unit.controller_fakes import make_rig, run

# The rig's battery: AChaMax 100 A * 800 V = 80 kW charge, ADisChaMax 120 A * 800 V = 96 kW,
# its inverter rating 90 kW: 80 kW charge / 90 kW discharge in force without an operator limit.
RIG_CHARGE_W, RIG_DISCHARGE_W = 80000.0, 90000.0

maybe_w = st.one_of(st.none(), st.floats(0, 1e7, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(
    v=st.one_of(st.none(), st.floats(0, 1000)),
    a=maybe_w,
    w=maybe_w,
    inv=maybe_w,
    cfg=maybe_w,
    op_c=maybe_w,
    op_d=maybe_w,
)
def test_the_operator_limit_never_raises_a_limit(
    v: float | None,
    a: float | None,
    w: float | None,
    inv: float | None,
    cfg: float | None,
    op_c: float | None,
    op_d: float | None,
) -> None:
    common: dict[str, Any] = dict(
        battery_v=v,
        a_cha_max=a,
        a_discha_max=a,
        w_cha_rte_max=w,
        w_discha_rte_max=w,
        inverter_charge_w=inv,
        inverter_discharge_w=inv,
        configured_charge_w=cfg,
        configured_discharge_w=cfg,
    )
    base = compute_limits(**common)
    with_op = compute_limits(**common, operator_charge_w=op_c, operator_discharge_w=op_d)
    # exactly the min() of what was in force and the operator's value: never above either
    assert with_op.charge_w == (base.charge_w if op_c is None else min(base.charge_w, op_c))
    assert with_op.discharge_w == (
        base.discharge_w if op_d is None else min(base.discharge_w, op_d)
    )
    if op_c is not None and op_c < base.charge_w:
        assert with_op.charge_source == "operator limit"


def test_a_limit_lowers_the_setpoint_now_and_says_so_then_clears() -> None:
    async def main() -> None:
        r = make_rig()
        await r.to_holding()
        await r.cmd("charge", {"power_w": 40000})
        assert r.dev.of("WSet")[-1] == -40000
        reply = await r.cmd("limit", {"charge_w": 30000, "discharge_w": None})
        assert reply["ok"] is True, reply
        assert reply["operator_limit"] == {"charge_w": 30000.0, "discharge_w": None}
        assert reply["limits"]["charge_w"] == 30000
        assert r.dev.of("WSet")[-1] == -30000  # written before the reply, not at the next step
        snap = r.ctl.snapshot()
        assert snap["limits"] == {
            "charge_w": 30000.0,
            "discharge_w": RIG_DISCHARGE_W,
            "source": "charge: operator limit; discharge: inverter rating",
        }
        assert snap["why"] == (
            "manual: charge 40.0 kW as commanded; bound by: charge_limit (operator limit)"
        )
        # a later command is bound by it too
        await r.cmd("charge", {"power_w": 50000})
        assert r.dev.of("WSet")[-1] == -30000
        assert r.ctl.snapshot()["why"].endswith("bound by: charge_limit (operator limit)")
        # a limit above the battery's does not raise it: the battery's own limit binds
        reply = await r.cmd("limit", {"charge_w": 500000, "discharge_w": 1e9})
        assert reply["limits"]["charge_w"] == RIG_CHARGE_W
        assert reply["limits"]["discharge_w"] == RIG_DISCHARGE_W
        await r.advance(3.0, soc=50)
        assert max(abs(x) for x in r.dev.of("WSet")) <= RIG_CHARGE_W
        assert r.dev.of("WSet")[-1] == -50000
        # null clears it
        await r.cmd("limit", {"charge_w": None, "discharge_w": None})
        assert "operator" not in r.ctl.snapshot()["limits"]["source"]
        assert r.ctl.snapshot()["why"].endswith("bound by: none")

    run(main())


@pytest.mark.parametrize(
    ("op_c", "op_d", "want"),
    [
        (0.0, 0.0, 60000),
        (1000.0, None, -60000),
        (None, 2500.5, 60000),
        (70000.0, 95000.0, -60000),
        (200000.0, 200000.0, 60000),
    ],
)
def test_nothing_written_exceeds_the_lowest_limit(
    op_c: float | None, op_d: float | None, want: int
) -> None:
    async def main() -> None:
        r = make_rig()
        await r.to_holding()
        await r.cmd("limit", {"charge_w": op_c, "discharge_w": op_d})
        lowest_c = min(RIG_CHARGE_W, math.inf if op_c is None else op_c)
        lowest_d = min(RIG_DISCHARGE_W, math.inf if op_d is None else op_d)
        for w in (want, -want, 2 * want, 1000):
            await r.cmd("discharge" if w > 0 else "charge", {"power_w": abs(w)})
            await r.advance(1.0, soc=50)
        for x in r.dev.of("WSet"):
            assert -lowest_c <= x <= lowest_d, (x, lowest_c, lowest_d)

    run(main())


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"charge_w": -1, "discharge_w": None}, "charge_w", "out_of_range"),
        ({"charge_w": None, "discharge_w": -0.5}, "discharge_w", "out_of_range"),
        ({"charge_w": math.nan, "discharge_w": None}, "charge_w", "invalid_payload"),
        ({"charge_w": None, "discharge_w": math.inf}, "discharge_w", "invalid_payload"),
        ({"charge_w": "3000", "discharge_w": None}, "charge_w", "invalid_payload"),
        ({"charge_w": True, "discharge_w": None}, "charge_w", "invalid_payload"),
        ({"charge_w": 1e12, "discharge_w": None}, "charge_w", "out_of_range"),
        ({"discharge_w": 1000}, "charge_w", "invalid_payload"),
        ({"charge_w": 1000, "discharge_w": 1000, "pf": 1}, "pf", "invalid_payload"),
    ],
)
def test_a_bad_limit_is_refused_naming_the_field_and_changes_nothing(
    body: dict[str, Any], field: str, code: str
) -> None:
    async def main() -> None:
        r = make_rig()
        await r.to_holding()
        await r.cmd("limit", {"charge_w": 20000, "discharge_w": None})
        await r.cmd("charge", {"power_w": 40000})
        before = r.ctl.snapshot()
        reply = await r.cmd("limit", body)
        assert reply["ok"] is False and reply["error"]["code"] == code, reply
        msg = reply["error"]["message"]
        assert msg.startswith(field) or f"unknown field {field!r}" in msg, reply
        after = r.ctl.snapshot()
        for key in ("state", "setpoint", "limits", "mode", "why"):
            assert after[key] == before[key], key
        assert r.ctl.operator_limit == (20000.0, None)

    run(main())


def test_a_running_mode_is_bound_by_the_limit_and_says_so() -> None:
    async def main() -> None:
        r = make_rig()
        r.ctl.on_status("meter", "online")
        r.feed("meter", "203", "W", 80000.0)
        r.feed("meter", "", "ts", 1.7e9 + r.clock.now)
        await r.to_holding()
        await r.cmd("mode", {"mode": "peak_shaving", "params": {"target_w": 50000}})
        assert r.dev.of("WSet")[-1] > 10000  # discharging above the limit to come
        await r.cmd("limit", {"charge_w": None, "discharge_w": 10000})
        assert r.dev.of("WSet")[-1] == 10000
        snap = r.ctl.snapshot()
        assert snap["why"].endswith("bound by: discharge_limit (operator limit)"), snap["why"]
        assert snap["limits"]["source"] == "charge: battery AChaMax*V; discharge: operator limit"
        assert snap["mode"]["name"] == "peak_shaving"  # the mode keeps running, bounded

    run(main())
