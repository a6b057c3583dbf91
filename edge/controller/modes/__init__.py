"""Operating modes: one small pure class per mode, run every control tick (see README.md)."""

from edge.controller.modes.base import Mode, ParamsSchema, SiteView, Want, kw
from edge.controller.modes.registry import load_mode, mode_class, mode_names

__all__ = [
    "Mode",
    "ParamsSchema",
    "SiteView",
    "Want",
    "kw",
    "load_mode",
    "mode_class",
    "mode_names",
]
