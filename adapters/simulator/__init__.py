"""The SunSpec site simulator: `bess-edge sim`. Public API: `SiteSimulator` (see README.md)."""

from adapters.simulator.device import InjectError
from adapters.simulator.site import SiteSimulator

__all__ = ["InjectError", "SiteSimulator"]
