"""Read planning: which registers to read in which request, and poll-group assignment. Pure.

Each point is read in the same request as its scale factor, so a scale factor that changes
at run time can never be paired with a value read under the old one.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from adapters.modbus.config import PollGroupConfig
from adapters.modbus.points import PointSpec

MAX_REGS = 125


@dataclass
class ReadBlock:
    """One read request: registers [start, start+count) and the points decoded from it."""

    start: int
    count: int
    points: list[PointSpec] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + self.count


def plan_reads(
    points: Iterable[PointSpec],
    sf_specs: dict[str, PointSpec],
    max_regs: int = MAX_REGS,
    max_gap: int = 16,
) -> list[ReadBlock]:
    """Batch points into few requests of at most `max_regs` registers, none read twice.

    A gap of up to `max_gap` unused registers is bridged (read and thrown away) when that
    saves a request. A point and its scale factor land in the same block whenever that does
    not make blocks overlap or exceed `max_regs`; otherwise (a scale factor shared by points
    spread over more than one request, as in long repeating groups) the point is decoded with
    the scale factor read in the same poll.
    """
    items: list[tuple[int, int, PointSpec]] = []
    for p in points:
        lo, hi = p.address, p.end
        sf = sf_specs.get(p.sf_key) if p.sf_key else None
        if sf is not None and max(hi, sf.end) - min(lo, sf.address) <= max_regs:
            lo, hi = min(lo, sf.address), max(hi, sf.end)
        if p.length > max_regs:
            raise ValueError(f"{p.key}: {p.length} registers do not fit one request")
        items.append((lo, hi, p))
    items.sort(key=lambda t: (t[2].address, t[0]))
    extent: dict[str, int] = {}  # model -> end of its last point
    for _, hi, p in items:
        extent[p.model] = max(extent.get(p.model, 0), hi)
    blocks: list[ReadBlock] = []
    model: str | None = None
    for lo, hi, p in items:
        cur = blocks[-1] if blocks else None
        if p.model != model:
            model = p.model
            if cur is not None and extent[model] - cur.start > max_regs:
                # A model that does not fit the current request starts its own, so its
                # points and scale factors can share requests.
                blocks.append(ReadBlock(lo, hi - lo, [p]))
                continue
        if cur is not None and cur.start <= p.address and p.end <= cur.end:
            cur.points.append(p)  # already inside the block (e.g. covered for a scale factor)
            continue
        floor = cur.end if cur is not None else 0
        if lo < floor:  # its scale factor is in an earlier block: read the point alone
            lo, hi = p.address, p.end
        if cur is not None and lo - cur.end <= max_gap and max(hi, cur.end) - cur.start <= max_regs:
            cur.count = max(hi, cur.end) - cur.start
            cur.points.append(p)
        elif cur is not None and p.address - cur.end <= max_gap and p.end - cur.start <= max_regs:
            cur.count = max(p.end, cur.end) - cur.start  # the point fits, its SF is read apart
            cur.points.append(p)
        else:
            blocks.append(ReadBlock(lo, hi - lo, [p]))
    return blocks


def split_block(block: ReadBlock, sf_specs: dict[str, PointSpec], max_regs: int) -> list[ReadBlock]:
    """Split a refused block: first at its bridged gaps, else into two halves of its points,
    each planned tight. Empty for a single point."""
    pts = sorted(block.points, key=lambda p: p.address)
    if len(pts) < 2:
        return []
    runs = plan_reads(pts, sf_specs, max_regs, 0)
    if len(runs) > 1:
        return runs
    mid = len(pts) // 2
    return plan_reads(pts[:mid], sf_specs, max_regs, 0) + plan_reads(
        pts[mid:], sf_specs, max_regs, 0
    )


@dataclass
class PollGroup:
    name: str
    period_s: float
    points: list[PointSpec]
    blocks: list[ReadBlock] = field(default_factory=list)
    next_due: float = 0.0
    done_once: bool = False

    @property
    def once(self) -> bool:
        return self.period_s <= 0


def matches(key: str, pattern: str) -> bool:
    """`802/*` matches every point of model 802; `160/module/*/DCA` every module's DCA."""
    return fnmatch.fnmatchcase(key, pattern)


def assign_groups(
    points: Sequence[PointSpec], groups: Sequence[PollGroupConfig], default_period_s: float
) -> list[PollGroup]:
    """Put each point in the first group whose pattern matches it, else in `default`.

    A point-map point with `max_data_age` and no explicit group is polled at that age.
    """
    out = {g.name: PollGroup(g.name, g.period_s, []) for g in groups}
    default = PollGroup("default", default_period_s, [])
    by_age: dict[float, PollGroup] = {}
    for p in points:
        target = next(
            (out[g.name] for g in groups if any(matches(p.key, pt) for pt in g.points)), None
        )
        if target is None and p.max_data_age_s is not None:
            target = by_age.setdefault(
                p.max_data_age_s, PollGroup(f"age-{p.max_data_age_s:g}", p.max_data_age_s, [])
            )
        (target or default).points.append(p)
    result = [g for g in out.values() if g.points] + list(by_age.values())
    if default.points:
        result.append(default)
    return result


@dataclass
class PublishFilter:
    """Publish by exception: a value goes out when it changed beyond its deadband.

    Pure; the caller passes the time in. `refresh_due` tells when to republish everything.
    """

    refresh_s: float
    default_deadband: float = 0.0
    deadbands: dict[str, float] = field(default_factory=dict)
    published: dict[str, object] = field(default_factory=dict)
    last_refresh: float | None = None
    _db_cache: dict[str, float] = field(default_factory=dict)

    def deadband(self, key: str) -> float:
        db = self._db_cache.get(key)
        if db is None:
            db = next(
                (v for pat, v in self.deadbands.items() if matches(key, pat)), self.default_deadband
            )
            self._db_cache[key] = db
        return db

    def changed(self, key: str, value: object) -> bool:
        """True (and remembered as published) when `value` should be published now."""
        if key not in self.published:
            self.published[key] = value
            return True
        old = self.published[key]
        if old == value and type(old) is type(value):
            return False
        if (
            isinstance(old, (int, float))
            and isinstance(value, (int, float))
            and not isinstance(old, bool)
            and abs(value - old) <= self.deadband(key)
            and self.deadband(key) > 0
        ):
            return False
        self.published[key] = value
        return True

    def refresh_due(self, now: float) -> bool:
        return self.last_refresh is None or now - self.last_refresh >= self.refresh_s

    def refreshed(self, now: float, values: dict[str, object]) -> None:
        self.last_refresh = now
        self.published.update(values)

    def forget(self) -> None:
        """After a reconnect: everything is published again."""
        self.published.clear()
        self.last_refresh = None


def backoff(attempt: int, lo: float, hi: float) -> float:
    """Capped exponential backoff: lo, 2lo, 4lo, ... hi."""
    return float(min(hi, lo * (2 ** min(attempt, 30))))
