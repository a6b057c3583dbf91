"""What the outstation knows of the site, built from MQTT messages. Pure: no I/O, no clock.

The shell feeds every message of the subscribed topics to `SiteImage.on_message`; the point
values the DNP3 database should hold are then read with `binary()` and `analog()`. A value
that is not known (no retained message yet, device offline, `null`) is `None`: the shell
serves it with the COMM_LOST quality flag rather than inventing a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from edge.dnp3.pointmap import AnalogInput, BinaryInput, PointMap
from edge.mqtt import jsonutil
from edge.mqtt.topics import Topics


@dataclass
class SiteImage:
    topics: Topics
    pointmap: PointMap
    soc_bands: tuple[float, ...] = ()
    state: dict[str, Any] | None = None
    online: dict[str, bool] = field(default_factory=dict)
    points: dict[str, float | None] = field(default_factory=dict)
    fallback_active: bool = False
    events_dropped: int = 0
    # The `grid` of the controller's last `cmd/grid` reply, until its next state message
    # (published after that reply): two curve-point writes in a row build on each other.
    grid_reply: dict[str, Any] | None = None

    # -- what to subscribe to ------------------------------------------------------------
    def devices(self) -> list[str]:
        """Devices whose status or points appear in the map (the controller excluded)."""
        names: set[str] = set()
        sources = [p.source for p in self.pointmap.binary_inputs]
        sources += [p.source for p in self.pointmap.analog_inputs]
        for src in sources:
            kind, _, rest = src.partition(":")
            if kind in ("status", "point", "soc_band"):
                names.add(rest.split("/", 1)[0])
        names.discard("controller")
        return sorted(names)

    def subscriptions(self) -> list[str]:
        t = self.topics
        subs = [t.controller_state, t.controller_status]
        for dev in self.devices():
            subs.append(t.status(dev))
        for p in self.pointmap.analog_inputs:
            if p.source.startswith("point:"):
                dev, _, suffix = p.source.removeprefix("point:").partition("/")
                subs.append(f"{t.device(dev)}/{suffix}")
            elif p.source.startswith("soc_band:"):
                subs.append(t.point(p.source.removeprefix("soc_band:"), 802, "SoC"))
        return sorted(set(subs))

    # -- input ---------------------------------------------------------------------------
    def on_message(self, topic: str, payload: bytes) -> bool:
        """Update from one message; True when something the map reads may have changed."""
        t = self.topics
        text = payload.decode("utf-8", "replace").strip()
        if topic == t.controller_state:
            try:
                state = jsonutil.loads(payload) if text else None
            except ValueError:
                return False  # a broken state message changes nothing we serve
            self.state = state if isinstance(state, dict) else None
            self.grid_reply = None
            return True
        if topic == t.controller_status:
            self.online["controller"] = text == "online"
            return True
        prefix = t.root + "/"
        if not topic.startswith(prefix):
            return False
        dev, _, suffix = topic[len(prefix) :].partition("/")
        if suffix == "status":
            self.online[dev] = text == "online"
            return True
        try:
            value = jsonutil.loads(payload) if text else None
        except ValueError:
            value = None
        self.points[f"{dev}/{suffix}"] = _number(value)
        return True

    # -- output --------------------------------------------------------------------------
    def binary(self, p: BinaryInput) -> bool | None:
        kind, _, arg = p.source.partition(":")
        if kind == "dnp3":
            return self.fallback_active
        if kind == "status":
            return self.online.get(arg)
        st = self._live_state()
        if st is None:
            return None
        if kind == "state":
            return st.get("state") == arg
        if kind == "fault":
            faults = st.get("faults") or []
            return any(arg in ("*", f.get("code")) for f in faults if isinstance(f, dict))
        if kind == "mode":
            mode = st.get("mode")
            return isinstance(mode, dict) and mode.get("name") == arg
        if kind == "grid":
            f = (self.grid_functions() or {}).get(arg)
            return f.get("enabled") is True if isinstance(f, dict) else None
        return None

    def grid_functions(self) -> dict[str, Any] | None:
        """The controller's `grid.functions` (None: not known, or no grid support)."""
        st = self._live_state()
        if st is None:
            return None
        grid = self.grid_reply or st.get("grid")
        funcs = grid.get("functions") if isinstance(grid, dict) else None
        return funcs if isinstance(funcs, dict) else None

    def analog(self, p: AnalogInput) -> float | None:
        src = p.source
        if src == "dnp3:events_dropped":
            return float(self.events_dropped)
        if src.startswith("point:"):
            return self._point(src.removeprefix("point:"))
        if src.startswith("soc_band:"):
            soc = self._point(f"{src.removeprefix('soc_band:')}/802/SoC")
            return None if soc is None else float(sum(soc >= b for b in self.soc_bands))
        st = self._live_state()
        if st is None:
            return None
        if src == "state_code":
            name = st.get("state")
            codes = self.pointmap.state_codes
            return float(codes.index(name)) if name in codes else None
        node: Any = st
        for key in src.removeprefix("ctl:").split("."):
            node = node.get(key) if isinstance(node, dict) else None
        return _number(node)

    def _point(self, key: str) -> float | None:
        """A device point, unless its device is known to be offline (stale)."""
        if self.online.get(key.split("/", 1)[0]) is False:
            return None
        return self.points.get(key)

    def _live_state(self) -> dict[str, Any] | None:
        """The controller state, unless the controller is known to be offline (stale)."""
        if self.online.get("controller") is False:
            return None
        return self.state


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)
