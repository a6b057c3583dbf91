"""History on the gateway: the recorder writes the site's telemetry, state and events to
SQLite; the live view reads trends from it; `bess-edge history export` writes CSV."""

from edge.history.config import HistoryConfig
from edge.history.store import Event, HistoryStore, Sample

__all__ = ["Event", "HistoryConfig", "HistoryStore", "Sample"]
