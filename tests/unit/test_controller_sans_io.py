"""The controller core without I/O: events in, actions out, driven synchronously.

No event loop runs here. Each test feeds the core points, commands, write results and timers,
and checks the actions it asks for (one confirmed write at a time, cancels, exactly one reply
per command), which is what lets the shell own every task and timer.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from edge.controller.actions import Action, Cancel, Emit, Reply, StartTimer, Write
from edge.controller.core import REPLY_TIMER, ControllerCore
from edge.controller.plan import Plan
from edge.controller.profiles import profile_class
from edge.controller.telemetry import Telemetry
from tests.unit.controller_fakes import BATTERY, FakeClock, settings

CORE_MODULES = (
    "actions",
    "commands",
    "context",
    "core",
    "grid_control",
    "monitors",
    "operating",
    "plan",
    "runner",
    "sequences",
    "setpoint",
)


class Bench:
    """The core and a log of its actions; writes are answered only when a test says so."""

    def __init__(self, **over: Any) -> None:
        self.clock = FakeClock()
        over.setdefault("restart_settle_s", 0)
        over.setdefault("on_restart", "report")
        s = settings(profile="sunspec_704", **over)
        tel = Telemetry(self.clock)
        self.core = ControllerCore(
            s, profile_class(s)(s, None, tel), tel, clock=self.clock, wall=lambda: 1.7e9
        )
        for p, v in BATTERY.items():
            self.core.on_point("battery", "802", p, v)
        for (m, p), v in {("702", "WMaxRtg"): 90000.0, ("701", "Alrm"): 0}.items():
            self.core.on_point("inverter", m, p, v)
        self.core.on_status("battery", "online")
        self.core.on_status("inverter", "online")
        self.log: list[Action] = []
        self.open: dict[int, Write] = {}  # writes sent and not yet answered
        self._take()

    def _take(self) -> list[Action]:
        new = self.core.take()
        self.log += new
        for a in new:
            if isinstance(a, Write):
                self.open[a.ticket] = a
            elif isinstance(a, Cancel):
                self.open.pop(a.ticket, None)
        return new

    def command(self, request: int, name: str, body: dict[str, Any] | None = None) -> None:
        self.core.command(request, name, body or {})
        self._take()

    def answer(self, w: Write, reply: Any = "confirm") -> None:
        """The device's reply to `w`: its read-back by default, like a device would."""
        if reply == "confirm":
            reply = {"ok": True, "value": w.write.value}
        self.open.pop(w.ticket, None)
        self.core.write_done(w.ticket, reply)
        self._take()

    def confirm_all(self, limit: int = 50) -> list[str]:
        """Answer every write as it comes (one at a time per program), echoing the value."""
        done = []
        for _ in range(limit):
            if not self.open:
                return done
            w = next(iter(self.open.values()))
            done.append(f"{w.write.model}/{w.write.point}={w.write.value}")
            self.core.on_point(w.write.device, w.write.model, w.write.point, w.write.value)
            self.answer(w)
        raise AssertionError("writes never ended")

    def replies(self, request: int) -> list[Reply]:
        return [a for a in self.log if isinstance(a, Reply) and a.request == request]

    def to_holding(self) -> None:
        self.command(1, "start")
        self.confirm_all()
        self.core.on_point("battery", "802", "State", 3)
        self._take()
        self.confirm_all()
        assert self.core.state == "holding", self.core.reason


def test_start_writes_one_confirmed_write_at_a_time_and_replies_after_the_contactors() -> None:
    b = Bench()
    b.command(1, "start")
    assert b.core.state == "starting"
    assert len(b.open) == 1 and not b.replies(1)  # nothing written before AlmRst is confirmed
    first = next(iter(b.open.values()))
    assert (first.write.point, first.write.tol) == ("AlmRst", None)
    assert b.confirm_all() == ["802/AlmRst=1", "802/SetOp=1"]
    (reply,) = b.replies(1)
    assert reply.body is not None and reply.body["state"] == "connecting"
    b.core.on_point("battery", "802", "State", 3)
    b._take()
    assert b.confirm_all() == [
        "704/WSetMod=1",
        "704/WSetRvrtTms=30",
        "704/WSet=0",
        "704/WSetEna=1",
        "704/WSet=0",
    ]
    assert b.core.state == "holding"


def test_a_read_back_that_differs_trips_and_the_stop_tries_every_step() -> None:
    b = Bench()
    b.to_holding()
    b.command(2, "discharge", {"power_w": 5000})
    (w,) = b.open.values()
    assert (w.write.point, w.write.value) == ("WSet", 5000)
    b.answer(w, {"ok": True, "value": 4000})  # the device holds something else
    assert b.core.state == "fault"
    (reply,) = b.replies(2)
    assert reply.refused is not None and reply.refused.code == "fault_active"
    assert any(isinstance(a, Emit) and a.event["kind"] == "fault" for a in b.log)
    # Stop: power 0 refused, yet inverter off and the contactors are still written.
    (w,) = b.open.values()
    assert (w.write.point, w.write.value) == ("WSet", 0)
    b.answer(w, {"ok": False, "error": {"code": "device_error", "message": "busy"}})
    assert b.confirm_all() == ["704/WSet=0", "704/WSetEna=0", "802/SetOp=2"]
    assert b.core._stop_failed and b.core.state == "fault"


def test_a_new_setpoint_cancels_the_write_in_flight_and_ignores_its_late_reply() -> None:
    b = Bench()
    b.to_holding()
    b.command(2, "charge", {"power_w": 5000})
    (first,) = b.open.values()
    b.command(3, "discharge", {"power_w": 3000})
    assert Cancel(first.ticket) in b.log
    assert [r.body["state"] for r in b.replies(2) if r.body] == ["discharging"]
    (second,) = b.open.values()
    assert second.write.value == 3000
    b.core.write_done(first.ticket, {"ok": True, "value": -5000})  # late: no effect
    assert b.core.take() == [] and b.core.applied_w == 0
    b.answer(second)
    (reply,) = b.replies(3)
    assert reply.body == {
        "state": "discharging",
        "setpoint": {"requested_w": 3000, "applied_w": 3000},
    }


def test_a_reply_waits_for_its_work_and_the_deadline_answers_exactly_once() -> None:
    b = Bench()
    b.to_holding()
    b.command(2, "charge", {"power_w": 5000})
    timers = [a for a in b.log if isinstance(a, StartTimer) and a.name == f"{REPLY_TIMER}2"]
    assert len(timers) == 1 and timers[0].delay_s <= 4.5
    assert not b.replies(2)  # the write has not been confirmed
    b.core.timer(f"{REPLY_TIMER}2")
    b._take()
    (reply,) = b.replies(2)
    assert reply.body is not None and reply.body["setpoint"]["applied_w"] == 0
    (w,) = b.open.values()
    b.answer(w)  # confirmed after the deadline: the state follows, no second reply
    b.core.timer(f"{REPLY_TIMER}2")
    b._take()
    assert len(b.replies(2)) == 1 and b.core.applied_w == -5000


def test_refusals_and_unknown_commands_reply_at_once_and_change_nothing() -> None:
    b = Bench()
    b.to_holding()
    before = b.core.snapshot()
    b.command(7, "charge", {"power_w": "lots"})
    b.command(8, "dance")
    for request in (7, 8):
        (reply,) = b.replies(request)
        assert reply.refused is not None
    assert b.replies(8)[0].refused.code == "unknown_command"  # type: ignore[union-attr]
    assert not b.open and b.core.snapshot() == before


class AsyncProfileMixin:
    """A user's profile written for the old, awaiting interface."""

    async def write_power(self, signed_w: float) -> None:  # type: ignore[override]
        return None


def test_a_profile_that_awaits_instead_of_planning_trips_with_a_clear_fault() -> None:
    b = Bench()
    b.to_holding()
    p = b.core.p

    def old_style(signed_w: float) -> Plan:
        return AsyncProfileMixin().write_power(signed_w)  # type: ignore[return-value]

    p.write_power = old_style  # type: ignore[method-assign]
    b.command(2, "discharge", {"power_w": 1000})
    assert b.core.state == "fault"
    assert any("coroutine" in f.detail for f in b.core.faults), b.core.faults


def test_the_core_modules_do_no_io() -> None:
    """No async, no await, no asyncio, no MQTT client in the core: the shell owns them."""
    root = Path(__file__).resolve().parents[2] / "edge" / "controller"
    for name in CORE_MODULES:
        tree = ast.parse((root / f"{name}.py").read_text())
        for node in ast.walk(tree):
            assert not isinstance(node, ast.AsyncFunctionDef | ast.Await), (name, node.lineno)
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                mods.append(getattr(node, "module", None) or "")
                for m in mods:
                    assert m != "asyncio" and not m.startswith(("paho", "edge.mqtt.client")), (
                        name,
                        m,
                    )
    out = subprocess.run(
        [sys.executable, "-c", "import sys, edge.controller.core; print('paho' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"


# -- any interleaving -------------------------------------------------------------------------
POWER = st.tuples(
    st.sampled_from(["charge", "discharge"]),
    st.fixed_dictionaries({"power_w": st.integers(0, 300_000)}),
)
COMMANDS = st.one_of(
    POWER,
    st.tuples(st.sampled_from(["start", "stop", "hold", "reset", "recover_soc"]), st.just({})),
    POWER,
    st.tuples(
        st.just("limit"),
        st.fixed_dictionaries(
            {"charge_w": st.one_of(st.none(), st.integers(0, 100_000)), "discharge_w": st.none()}
        ),
    ),
)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("cmd"), COMMANDS),
        st.tuples(st.just("answer"), st.sampled_from(["confirm", "refuse", "timeout", "other"])),
        st.tuples(st.just("late"), st.integers(0, 30)),  # a reply to an older ticket
        st.tuples(st.just("timer"), st.integers(0, 30)),
        st.tuples(st.just("tick"), st.floats(0.05, 3.0)),
        st.tuples(st.just("state"), st.sampled_from([1, 3])),
        st.tuples(st.just("cmd"), COMMANDS),
        st.tuples(st.just("answer"), st.just("confirm")),
    ),
    min_size=4,
    max_size=40,
)


@given(st.booleans(), STEPS)
@hypothesis_settings(max_examples=200, deadline=None)
def test_any_interleaving_gives_one_reply_each_and_writes_stay_in_limits(
    holding: bool, steps: list[Any]
) -> None:
    b = Bench(max_charge_w=70_000)
    request = 0
    if holding:
        b.to_holding()
        request = 1
    sent: dict[int, Write] = {}
    for kind, arg in steps:
        if kind == "cmd":
            request += 1
            b.command(request, *arg)
        elif kind == "answer" and b.open:
            w = next(iter(b.open.values()))
            reply = {
                "confirm": "confirm",
                "refuse": {"ok": False, "error": {"code": "device_error", "message": "x"}},
                "timeout": None,
                "other": {"ok": True, "value": -12345},
            }[arg]
            if reply == "confirm":
                b.core.on_point(w.write.device, w.write.model, w.write.point, w.write.value)
            b.answer(w, reply)
        elif kind == "late" and sent:
            old = sent[sorted(sent)[arg % len(sent)]]
            if old.ticket not in b.open:  # answered or cancelled already: must change nothing
                before = (b.core.state, b.core.applied_w, len(b.log))
                b.core.write_done(old.ticket, {"ok": True, "value": old.write.value})
                b._take()
                assert (b.core.state, b.core.applied_w, len(b.log)) == before
        elif kind == "timer" and request:
            b.core.timer(f"{REPLY_TIMER}{arg % request + 1}")
            b._take()
        elif kind == "tick":
            b.clock.now += arg
            b.core.on_point("battery", "802", "SoC", 50.0)
            b.core.tick()
            b._take()
        elif kind == "state":
            b.core.on_point("battery", "802", "State", arg)
            b._take()
        for a in b.log:
            if isinstance(a, Write):
                sent[a.ticket] = a
        # One write in flight per program (lanes: sequence, setpoint, stop, heartbeat, grid).
        assert len(b.open) <= 5
        lim = b.core.limits
        for w in b.open.values():
            if w.write.point == "WSet":  # charge_sign -1: charge is negative, as inside
                assert -lim.charge_w - 0.5 <= w.write.value <= lim.discharge_w + 0.5, (w, lim)
    # Every command is answered once, at the latest by its deadline timer.
    for r in range(1, request + 1):
        b.core.timer(f"{REPLY_TIMER}{r}")
    b._take()
    for r in range(1, request + 1):
        assert len(b.replies(r)) == 1, (r, b.replies(r))


def test_a_grid_curve_unconfirmed_by_the_deadline_is_refused_and_put_back() -> None:
    """Refused means nothing changed: the curve being written is cancelled and the previous
    one written back, so the inverter and the state agree with the refusal."""
    from tests.unit.test_controller_grid import GRID, NATIVE_704

    b = Bench(grid=GRID)
    for (m, p), v in NATIVE_704.items():
        b.core.on_point("inverter", m, p, v)
    b.to_holding()
    assert "freq_watt" in b.core.grid_native()
    before = b.core.grid
    b.command(5, "grid", {"function": "freq_watt", "params": {"enabled": False}})
    (w,) = b.open.values()
    assert (w.write.model, w.write.point, w.write.value) == ("711", "Ena", 0)
    b.core.timer(f"{REPLY_TIMER}5")  # the inverter never answered in time
    b._take()
    (reply,) = b.replies(5)
    assert reply.refused is not None and "did not confirm" in reply.refused.message
    assert Cancel(w.ticket) in b.log and b.core.grid == before
    written_back = b.confirm_all()
    assert "711/Ena=1" in written_back and "freq_watt" in b.core.grid_native()
