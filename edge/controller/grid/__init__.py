"""Grid support (IEEE 1547-2018 / MESA-ESS functions): volt-var, volt-watt, frequency-watt,
constant power factor and PV smoothing. `settings` validates `[controller.grid]`, `functions`
holds the pure curves, `stage` runs them between the mode and the setpoint pipeline."""

from edge.controller.grid.settings import GridSettings, parse_grid
from edge.controller.grid.stage import GridOut, GridState, apply_grid

__all__ = ["GridOut", "GridSettings", "GridState", "apply_grid", "parse_grid"]
