"""Entry point `bess_edge.services: controller` (see edge/services.py)."""

from __future__ import annotations

from edge.config.site import SiteConfig
from edge.controller.shell import ControllerService
from edge.services import Service


def make_services(site: SiteConfig) -> list[Service]:
    """One controller when the site file has a [controller] section, else none."""
    if site.controller is None:
        return []
    return [ControllerService(site.site, site.broker, site.controller)]
