"""What the page shows, kept up to date from the site's topics (pure: no I/O, clock injected).

The model holds the latest value of each thing the page shows: the controller's state, each
device's status, data age and display points, the site's powers, the last events. Changes
mark parts dirty; `take_delta()` returns only those, so a burst of telemetry costs one push
per period, whatever its rate. Everything is bounded (display points per device, events), so
memory stays flat however long the server runs.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.history import tree
from edge.mqtt import jsonutil
from edge.mqtt.topics import Topics

# Point names shown per device (the last level of `{model}/{point}`).
DISPLAY_POINTS = frozenset(
    {"W", "SoC", "State", "St", "InvSt", "Alrm", "WChaMax", "DCW", "V", "Hz", "StorConn"}
)
MAX_POINTS_PER_DEVICE = 64
MAX_DEVICES = 256


@dataclass(frozen=True)
class SiteRoles:
    """Which device is which, from the site file (controller section, bridge devices)."""

    battery: str | None = None
    inverter: str | None = None
    meter: str | None = None
    pv: tuple[str, ...] = ()
    der: tuple[str, ...] = ()  # 2030.5 devices (the bridge)
    refresh_s: dict[str, float] = field(default_factory=dict)


class SiteModel:
    def __init__(
        self,
        site: str,
        roles: SiteRoles,
        stale_s: float = 20.0,
        max_events: int = 50,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.site = site
        self.root = Topics(site).root
        self.roles = roles
        self.stale_s = stale_s
        self.clock = clock
        self.controller: dict[str, Any] = {"status": None, "state": None}
        self.devices: dict[str, dict[str, Any]] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self.power: dict[str, float | None] = {}
        self._dirty: set[str] = set()
        self._new_events: list[dict[str, Any]] = []
        for name in (roles.battery, roles.inverter, roles.meter, *roles.pv, *roles.der):
            if name:
                self._device(name)

    # -- input -----------------------------------------------------------------------------
    def on_message(self, topic: str, payload: bytes) -> None:
        parts = tree.split(self.root, topic)
        if parts is None:
            return
        head, rest = parts
        try:
            if head == "controller":
                self._on_controller(rest, payload)
            elif head in tree.SERVICE_NAMES:
                return
            elif rest == "status":
                self._on_status(head, payload.decode("utf-8", "replace").strip())
            elif rest == "ts":
                dev = self._device(head)
                if dev is not None:
                    dev["ts"] = tree.number(jsonutil.loads(payload))
                    self._dirty.add(f"d:{head}")
            elif rest == "meta":
                self._on_meta(head, jsonutil.loads(payload))
            elif rest == "events":
                body = jsonutil.loads(payload)
                if isinstance(body, dict):
                    self.add_event({**body, "origin": head})
            elif tree.is_point(head, rest):
                self._on_point(head, rest, payload)
        except (ValueError, UnicodeDecodeError):
            return  # not JSON: nothing the page can show

    def _device(self, name: str) -> dict[str, Any] | None:
        dev = self.devices.get(name)
        if dev is None:
            if len(self.devices) >= MAX_DEVICES:
                return None
            kind = "ieee2030_5" if name in self.roles.der else None
            dev = {"status": None, "ts": None, "kind": kind, "values": {}, "stale": True}
            self.devices[name] = dev
        return dev

    def _on_controller(self, rest: str, payload: bytes) -> None:
        if rest == "state":
            state = jsonutil.loads(payload)
            if isinstance(state, dict):
                self.controller["state"] = state
                self._dirty.add("controller")
        elif rest == "status":
            self.controller["status"] = payload.decode("utf-8", "replace").strip()
            self._dirty.add("controller")
        elif rest == "events":
            body = jsonutil.loads(payload)
            if isinstance(body, dict):
                self.add_event({**body, "origin": "controller"})

    def _on_status(self, name: str, status: str) -> None:
        dev = self._device(name)
        if dev is not None and dev["status"] != status:
            dev["status"] = status
            self._dirty.add(f"d:{name}")

    def _on_meta(self, name: str, meta: Any) -> None:
        dev = self._device(name)
        if dev is not None and isinstance(meta, dict) and isinstance(meta.get("kind"), str):
            dev["kind"] = meta["kind"]
            self._dirty.add(f"d:{name}")

    def _on_point(self, name: str, key: str, payload: bytes) -> None:
        if key.rsplit("/", 1)[-1] not in DISPLAY_POINTS:
            return
        dev = self._device(name)
        if dev is None:
            return
        values = dev["values"]
        if key not in values and len(values) >= MAX_POINTS_PER_DEVICE:
            return
        value = jsonutil.loads(payload) if payload else None
        if isinstance(value, dict | list):
            return
        if values.get(key, ...) != value:
            values[key] = value
            self._dirty.add(f"d:{name}")
            self._update_power()

    def add_event(self, event: dict[str, Any]) -> None:
        event.setdefault("ts", round(self.clock(), 3))
        self.events.append(event)
        self._new_events.append(event)
        if len(self._new_events) > (self.events.maxlen or 50):
            del self._new_events[0]

    # -- derived ---------------------------------------------------------------------------
    def _w(self, name: str | None, *keys: str) -> float | None:
        dev = self.devices.get(name or "")
        if dev is None or dev["status"] == "offline":
            return None
        for k in keys:
            v = tree.number(dev["values"].get(k))
            if v is not None:
                return v
        return None

    def _update_power(self) -> None:
        r = self.roles
        battery = self._w(r.battery, "802/W")
        inverter = self._w(r.inverter, "701/W", "103/W")
        grid = self._w(r.meter, "203/W", "201/W", "204/W")
        pvs = [self._w(p, "701/W", "103/W", "102/W", "101/W") for p in r.pv]
        pv = sum(v for v in pvs if v is not None) if any(v is not None for v in pvs) else None
        ac = inverter if inverter is not None else battery
        load = None
        if grid is not None and ac is not None:
            load = grid + (pv or 0.0) + ac  # topics.md: load = grid + pv + battery
        power = {
            "battery_w": battery,
            "inverter_w": inverter,
            "grid_w": grid,
            "pv_w": pv,
            "load_w": load,
        }
        if power != self.power:
            self.power = power
            self._dirty.add("power")

    def _refresh_stale(self, now: float) -> None:
        for name, dev in self.devices.items():
            limit = 2 * self.roles.refresh_s[name] if name in self.roles.refresh_s else self.stale_s
            ts = dev["ts"]
            stale = dev["status"] != "online" or ts is None or now - ts > limit
            if stale != dev["stale"]:
                dev["stale"] = stale
                self._dirty.add(f"d:{name}")
                self._update_power()

    # -- output ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        self._refresh_stale(now)
        return {
            "kind": "snapshot",
            "site": self.site,
            "now": round(now, 3),
            "roles": {
                "battery": self.roles.battery,
                "inverter": self.roles.inverter,
                "meter": self.roles.meter,
                "pv": list(self.roles.pv),
                "der": list(self.roles.der),
            },
            "controller": self.controller,
            "devices": self.devices,
            "power": self.power,
            "events": list(self.events),
        }

    def take_delta(self) -> dict[str, Any] | None:
        """What changed since the last call, or None."""
        now = self.clock()
        self._refresh_stale(now)
        if not self._dirty and not self._new_events:
            return None
        delta: dict[str, Any] = {"kind": "delta", "now": round(now, 3)}
        if "controller" in self._dirty:
            delta["controller"] = self.controller
        devs = {d[2:]: self.devices[d[2:]] for d in self._dirty if d.startswith("d:")}
        if devs:
            delta["devices"] = devs
        if "power" in self._dirty:
            delta["power"] = self.power
        if self._new_events:
            delta["events"] = self._new_events
        self._dirty = set()
        self._new_events = []
        return delta
