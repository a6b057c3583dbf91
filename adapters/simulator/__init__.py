"""The SunSpec site simulator: `bess-edge sim`. Public API: `SiteSimulator` (see README.md).

The public names are imported on first use, so that reading the `[simulator]` section of a
site file (adapters.simulator.config) does not pull in the Modbus server and the physics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.simulator.device import InjectError
    from adapters.simulator.site import SiteSimulator

__all__ = ["InjectError", "SiteSimulator"]


def __getattr__(name: str) -> Any:
    if name == "SiteSimulator":
        from adapters.simulator.site import SiteSimulator

        return SiteSimulator
    if name == "InjectError":
        from adapters.simulator.device import InjectError

        return InjectError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
