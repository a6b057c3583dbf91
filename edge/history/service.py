"""Entry point `bess_edge.services: recorder` (see edge/services.py)."""

from __future__ import annotations

from dataclasses import replace

from edge.config.site import SiteConfig
from edge.history.config import database_path
from edge.history.recorder import RecorderService
from edge.services import Service


def make_services(site: SiteConfig) -> list[Service]:
    """One recorder when the site file has a [history] section, else none."""
    cfg = site.section("history")
    if cfg is None:
        return []
    path = database_path(site)
    assert path is not None
    return [RecorderService(site.site, site.broker, replace(cfg, path=str(path)))]
