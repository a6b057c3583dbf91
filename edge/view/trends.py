"""Trends for the page: SoC and the site's powers over the last hour, day or week, read from
the history database (edge/history), in a few hundred buckets whatever the range."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.history.store import HistoryStore
from edge.view.model import SiteRoles

RANGES = {"hour": (3600, 10), "day": (86400, 120), "week": (7 * 86400, 900)}  # span, step


def trend_keys(roles: SiteRoles) -> dict[str, str]:
    """Trend name -> recorded series key."""
    keys = {"soc": "controller/soc"}
    if roles.inverter:
        keys["battery_w"] = f"{roles.inverter}/701/W"
    elif roles.battery:
        keys["battery_w"] = f"{roles.battery}/802/W"
    if roles.meter:
        keys["grid_w"] = f"{roles.meter}/203/W"
    for i, pv in enumerate(roles.pv):
        keys[f"pv{i}_w"] = f"{pv}/701/W"
    return keys


def read_trend(path: Path, roles: SiteRoles, range_name: str, now: float) -> dict[str, Any]:
    """Column-wise series on one time axis (what uPlot draws); null where nothing was recorded."""
    span, step = RANGES[range_name]
    t0 = now - span
    store = HistoryStore(path)
    try:
        cols = {
            name: dict(store.buckets(key, t0, now + 1, step))
            for name, key in trend_keys(roles).items()
        }
    finally:
        store.close()
    axis = sorted({t for col in cols.values() for t in col})
    out: dict[str, Any] = {"range": range_name, "step": step, "t": axis}
    for name, col in cols.items():
        out[name] = [col.get(t) for t in axis]
    pv_names = [n for n in cols if n.startswith("pv")]
    if pv_names:
        out["pv_w"] = [
            sum(v for v in (cols[n].get(t) for n in pv_names) if v is not None) for t in axis
        ]
        for n in pv_names:
            out.pop(n)
    if "grid_w" in out and "battery_w" in out:
        pv = out.get("pv_w") or [0.0] * len(axis)
        out["load_w"] = [
            None if g is None or b is None else g + (p or 0.0) + b
            for g, b, p in zip(out["grid_w"], out["battery_w"], pv, strict=True)
        ]
    return out
