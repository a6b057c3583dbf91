"""The edge node's protocol core: births, deaths, aliases, `bdSeq` and `seq`. Pure (h11 style).

Every method takes the time in ms and returns the messages to publish; the shell
(edge/sparkplug/service.py) feeds it the topic tree, the broker connection, the primary host's
STATE and NCMD, and publishes what it returns. Rules (topics.md, "Sparkplug B"):

- every connection registers an NDEATH will whose `bdSeq` is one more (mod 256) than the
  previous connection's; the NBIRTH of that connection carries the same `bdSeq`;
- `seq` is 0 in NBIRTH and one more (mod 256) in every later DBIRTH, DDATA and DDEATH of the
  session; NDEATH has none;
- with a primary host configured, nothing is born until its STATE says online; STATE offline
  ends the session (an NDEATH: the shell then disconnects and connects anew), a newer STATE
  online starts a new one; after a reconnect the (retained) STATE is awaited again;
- a device is born (DBIRTH) once it is online and its metrics are known, dies (DDEATH) when it
  goes offline; DDATA carries, by alias, the metrics whose value changed since they were sent.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from edge.mqtt.topics import SparkplugTopics
from edge.sparkplug import payload as pl
from edge.sparkplug.payload import CmdMetric, DataType, MetricDef

BDSEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"
_UNSENT = object()


@dataclass(frozen=True)
class Out:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True)
class MetricSpec:
    """What a device declares for a metric; the session gives it its alias."""

    name: str
    datatype: DataType
    unit: str | None = None
    writable: bool = False


@dataclass
class _Device:
    name: str
    defs: dict[str, MetricDef] = field(default_factory=dict)
    by_alias: dict[int, MetricDef] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    sent: dict[str, Any] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    online: bool = False
    born: bool = False
    birth_due: bool = False
    due_since: int | None = None


class EdgeSession:
    def __init__(
        self, topics: SparkplugTopics, primary_host: str | None = None, birth_wait_ms: int = 1000
    ) -> None:
        self.t = topics
        self.primary_host = primary_host
        # A device that comes online is born once every metric has a value (its retained
        # points arrive just after its status), or after this long with nulls for the rest.
        self.birth_wait_ms = birth_wait_ms
        self._lock = threading.Lock()  # prepare_connect runs in the MQTT client's thread
        self._next_bd = 0
        self._connect_bd = 0
        self._connects = 0
        self.bd_seq: int | None = None
        self.connected = False
        self.host_online = primary_host is None
        self._host_ts = -1
        self.node_born = False
        self._seq = 0
        self._alias = 0
        self._aliases: dict[tuple[str, str], int] = {}
        self.devices: dict[str, _Device] = {}
        self.rebirth_def = MetricDef(
            REBIRTH, self._alias_for("", REBIRTH), DataType.Boolean, writable=True
        )
        self.bdseq_def = MetricDef(BDSEQ, 0, DataType.Int64)  # no alias: NDEATH names it

    # -- the connection ----------------------------------------------------------------------
    def prepare_connect(self, now_ms: int, connects: int) -> bytes:
        """Before each connection attempt: the NDEATH will for it, with its `bdSeq`.

        `connects` counts the attempts the broker accepted so far. A number is used up only by
        an accepted attempt: attempts that fail while the broker is away leave no gaps."""
        with self._lock:
            if connects != self._connects:
                self._connects = connects
                self._next_bd = (self._connect_bd + 1) % 256
            self._connect_bd = self._next_bd
            return pl.ndeath(self._connect_bd, now_ms)

    def on_connect(self, now_ms: int) -> list[Out]:
        with self._lock:
            self.bd_seq = self._connect_bd
        self.connected = True
        return self._maybe_birth(now_ms)

    def on_disconnect(self) -> None:
        self.connected = False
        if self.primary_host is not None:
            self.host_online = False  # learnt again from the retained STATE after reconnecting
        self._unborn()

    def ndeath(self, now_ms: int) -> Out:
        """The NDEATH of the current session, for when it ends while still connected."""
        return Out(self.t.node_topic("NDEATH"), pl.ndeath(self.bd_seq or 0, now_ms), qos=1)

    # -- the primary host --------------------------------------------------------------------
    def host_state(self, raw: bytes, now_ms: int) -> list[Out]:
        """`spBv1.0/STATE/{host}`: `{"online": bool, "timestamp": ms}`; older ones are ignored."""
        try:
            state = json.loads(raw)
            online, ts = state["online"], state["timestamp"]
        except (ValueError, TypeError, KeyError):
            return []
        if not isinstance(online, bool) or not isinstance(ts, int) or ts < self._host_ts:
            return []
        if ts == self._host_ts and online == self.host_online:
            return []  # the same STATE again (its retained copy after a reconnect)
        self._host_ts = ts
        self.host_online = online
        if not online:
            if not self.node_born:
                return []
            out = [self.ndeath(now_ms)] if self.connected else []
            self._unborn()
            return out
        if self.node_born:  # the host came back without our seeing it go: it needs our births
            return self._births(now_ms)
        return self._maybe_birth(now_ms)

    # -- the devices -------------------------------------------------------------------------
    def define(self, device: str, specs: list[MetricSpec]) -> None:
        """Declare (or re-declare) a device's metrics; a change is announced by a new DBIRTH."""
        d = self.devices.setdefault(device, _Device(device))
        defs = {
            s.name: MetricDef(
                s.name, self._alias_for(device, s.name), s.datatype, s.unit, s.writable
            )
            for s in specs
        }
        if defs != d.defs:
            d.defs = defs
            d.by_alias = {m.alias: m for m in defs.values()}
            d.birth_due = d.online

    def set_online(self, device: str, online: bool, now_ms: int) -> list[Out]:
        d = self.devices.setdefault(device, _Device(device))
        d.online = online
        if online:
            d.birth_due = not d.born
            return []
        d.birth_due = False
        if d.born and self.node_born:
            d.born = False
            return [Out(self.t.device_topic("DDEATH", device), pl.ddeath(now_ms, self._next()))]
        d.born = False
        return []

    def update(self, device: str, name: str, value: Any) -> None:
        d = self.devices.get(device)
        if d is None:
            d = self.devices[device] = _Device(device)
        d.values[name] = value
        if name in d.defs:
            d.dirty.add(name)

    def resend(self, device: str, name: str) -> None:
        """Send a metric's current value again (a refused write: the host reverts its tag)."""
        d = self.devices.get(device)
        if d is not None and name in d.defs:
            d.sent.pop(name, None)
            d.dirty.add(name)

    def flush(self, now_ms: int) -> list[Out]:
        """Due births, then one DDATA per born device with the metrics that changed."""
        if not self.node_born:
            return []
        out: list[Out] = []
        for d in self.devices.values():
            if d.birth_due and d.online and d.defs:
                if d.due_since is None:
                    d.due_since = now_ms
                complete = all(name in d.values for name in d.defs)
                if complete or now_ms - d.due_since >= self.birth_wait_ms:
                    out.append(self._dbirth(d, now_ms))
            elif d.born and d.dirty:
                changed = []
                for name in d.dirty:
                    m = d.defs.get(name)
                    if m is None:
                        continue
                    v = pl.coerce(m.datatype, d.values.get(name))
                    if d.sent.get(name, _UNSENT) != v:
                        d.sent[name] = v
                        changed.append((m, v))
                d.dirty.clear()
                if changed:
                    topic = self.t.device_topic("DDATA", d.name)
                    out.append(Out(topic, pl.data(now_ms, self._next(), changed)))
        return out

    # -- commands ----------------------------------------------------------------------------
    def ncmd(self, metrics: list[CmdMetric], now_ms: int) -> list[Out]:
        """NCMD: `Node Control/Rebirth` true republishes NBIRTH and every DBIRTH."""
        for cm in metrics:
            is_rebirth = cm.name == REBIRTH or (
                cm.name is None and cm.alias == self.rebirth_def.alias
            )
            if is_rebirth and cm.value is True and self.node_born:
                return self._births(now_ms)
        return []

    def resolve(self, device: str, cm: CmdMetric) -> MetricDef | None:
        """The metric a DCMD entry names, by name or alias; None if the device has no such."""
        d = self.devices.get(device)
        if d is None:
            return None
        if cm.name is not None:
            return d.defs.get(cm.name)
        return d.by_alias.get(cm.alias) if cm.alias is not None else None

    def value(self, device: str, name: str) -> Any:
        d = self.devices.get(device)
        return None if d is None else d.values.get(name)

    # -- internals ---------------------------------------------------------------------------
    def _alias_for(self, device: str, name: str) -> int:
        """Aliases are unique within the edge node and stable for its lifetime."""
        key = (device, name)
        if key not in self._aliases:
            self._alias += 1
            self._aliases[key] = self._alias
        return self._aliases[key]

    def _next(self) -> int:
        s = self._seq
        self._seq = (s + 1) % 256
        return s

    def _unborn(self) -> None:
        self.node_born = False
        for d in self.devices.values():
            d.born = False
            d.birth_due = d.online

    def _maybe_birth(self, now_ms: int) -> list[Out]:
        if self.connected and self.host_online and not self.node_born:
            return self._births(now_ms)
        return []

    def _births(self, now_ms: int) -> list[Out]:
        self._seq = 0
        node = [(self.bdseq_def, self.bd_seq), (self.rebirth_def, False)]
        out = [Out(self.t.node_topic("NBIRTH"), pl.birth(now_ms, self._next(), node))]
        self.node_born = True
        for d in self.devices.values():
            d.born = False
            if d.online and d.defs:
                out.append(self._dbirth(d, now_ms))
        return out

    def _dbirth(self, d: _Device, now_ms: int) -> Out:
        metrics = [(m, d.values.get(name)) for name, m in d.defs.items()]
        d.sent = {m.name: pl.coerce(m.datatype, v) for m, v in metrics}
        d.dirty.clear()
        d.born, d.birth_due, d.due_since = True, False, None
        return Out(self.t.device_topic("DBIRTH", d.name), pl.birth(now_ms, self._next(), metrics))
