"""Test doubles for the controller's two ports: a clock and a DeviceWriter with read-back.

`FakeDevices` keeps registers like a device would: a write stores the value and the reply carries
the stored value as read-back, unless a test overrides the read-back, refuses, delays or drops it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from edge.controller.config import ControllerSchema, ControllerSettings
from edge.controller.core import Controller
from edge.controller.profiles import profile_class
from edge.controller.telemetry import Telemetry


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Write:
    device: str
    model: str
    point: str
    value: Any
    at: float
    limits: Any = None


@dataclass
class FakeDevices:
    clock: FakeClock
    registers: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    writes: list[Write] = field(default_factory=list)
    readback: dict[tuple[str, str, str], Any] = field(default_factory=dict)  # forced read-backs
    refuse: dict[tuple[str, str, str], str] = field(default_factory=dict)  # error codes
    silent: set[tuple[str, str, str]] = field(default_factory=set)  # never answer (timeout)
    gate: asyncio.Event | None = None  # when set, writes wait for it
    controller: Controller | None = None
    echo: bool = True  # feed written values back as telemetry, like an adapter would

    async def write(self, device: str, model: str, point: str, value: Any) -> dict[str, Any]:
        key = (device, model, point)
        lim = self.controller.limits if self.controller is not None else None
        self.writes.append(Write(device, model, point, value, self.clock.now, lim))
        if self.gate is not None:
            await self.gate.wait()
        if key in self.silent:
            raise TimeoutError
        if key in self.refuse:
            return {"ok": False, "error": {"code": self.refuse[key], "message": "refused by test"}}
        self.registers[key] = value
        rb = self.readback.get(key, value)
        if self.echo and self.controller is not None:
            self.controller.on_point(device, model, point, rb)
        return {"ok": True, "value": rb}

    def of(self, point: str, model: str | None = None) -> list[Any]:
        return [
            w.value for w in self.writes if w.point == point and (model is None or w.model == model)
        ]

    def sequence(self) -> list[str]:
        return [f"{w.model}/{w.point}={w.value}" for w in self.writes]


BATTERY = {
    "SoC": 50.0,
    "V": 800.0,
    "AChaMax": 100.0,
    "ADisChaMax": 120.0,
    "WChaRteMax": 100000.0,
    "WDisChaRteMax": 100000.0,
    "State": 1,
    "Evt1": 0,
}


def settings(**over: Any) -> ControllerSettings:
    s = ControllerSchema().load(over)
    assert isinstance(s, ControllerSettings)
    return s


@dataclass
class Rig:
    ctl: Controller
    dev: FakeDevices
    clock: FakeClock
    events: list[dict[str, Any]]

    def feed(self, device: str, model: str, point: str, value: Any) -> None:
        self.ctl.on_point(device, model, point, value)

    def bat(self, point: str, value: Any) -> None:
        self.ctl.on_point("battery", "802", point, value)

    async def advance(self, seconds: float, step: float = 0.1, soc: float | None = None) -> None:
        """Move the fake clock, ticking like the shell does (and letting the work it starts
        run); optionally keep SoC fresh."""
        end = self.clock.now + seconds
        while self.clock.now < end - 1e-9:
            self.clock.now = min(end, self.clock.now + step)
            if soc is not None:
                self.bat("SoC", soc)
            self.ctl.tick()
            for _ in range(3):
                await asyncio.sleep(0)

    async def settle(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)
        await self.ctl.idle(2.0)
        for _ in range(5):
            await asyncio.sleep(0)

    async def cmd(self, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        from edge.controller.core import Refused

        try:
            reply = await self.ctl.command(name, body or {})
            out = {"ok": True, **reply}
        except Refused as r:
            out = {
                "ok": False,
                "error": {"code": r.code, "message": r.message},
                "state": self.ctl.state,
            }
        await self.settle()
        return out

    async def to_holding(self) -> None:
        """start -> contactors closed -> battery reports CONNECTED -> holding."""
        r = await self.cmd("start")
        assert r["ok"], r
        self.bat("State", 3)
        await self.settle()
        assert self.ctl.state == "holding", (self.ctl.state, self.ctl.reason)

    def transitions(self) -> list[tuple[str, str]]:
        return [(e["from"], e["to"]) for e in self.events if e["kind"] == "transition"]

    def fault_codes(self) -> list[str]:
        return [f.code for f in self.ctl.faults]


def make_rig(
    profile: str = "sunspec_704",
    battery: dict[str, Any] | None = None,
    inverter: dict[tuple[str, str], Any] | None = None,
    **over: Any,
) -> Rig:
    clock = FakeClock()
    over.setdefault("restart_settle_s", 0)
    over.setdefault("on_restart", "report")
    s = settings(profile=profile, **over)
    tel = Telemetry(clock)
    dev = FakeDevices(clock)
    events: list[dict[str, Any]] = []
    prof = profile_class(s)(s, dev, tel)
    ctl = Controller(
        s, prof, tel, clock=clock, wall=lambda: 1.7e9 + clock.now, on_event=events.append
    )
    dev.controller = ctl
    for p, v in {**BATTERY, **(battery or {})}.items():
        ctl.on_point("battery", "802", p, v)
    default_inv: dict[tuple[str, str], Any] = {
        "sunspec_704": {("702", "WMaxRtg"): 90000.0, ("701", "Alrm"): 0, ("701", "InvSt"): 3},
        "sunspec_123": {("121", "WMax"): 90000.0, ("124", "WChaMax"): 90000.0, ("103", "St"): 4},
        "rhombus_res125": {("res125", "Heartbeat"): 931, ("res125", "CIUFaultSummary"): 0},
    }[profile]
    for (m, p), v in {**default_inv, **(inverter or {})}.items():
        ctl.on_point("inverter", m, p, v)
    ctl.on_status("battery", "online")
    ctl.on_status("inverter", "online")
    return Rig(ctl, dev, clock, events)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))
