"""Rhombus RES-125 (not SunSpec: the built-in `res125` point map). No grid-support curves:
the controller runs them from the meter."""

from edge.families import Family

_FAULTS = (
    "CIUFaultSummary",
    "MIUF1Summary",
    "MIUF2Summary",
    "MIUF3Summary",
    "MIUF4Summary",
    "Warnings",
    "Shutdowns",
)

FAMILY = Family(
    name="rhombus_res125",
    order=2,
    sim_profile="res125",
    description="802 battery + Rhombus RES-125 (point map, model key res125)",
    profile="edge.families.rhombus_res125.profile:RhombusRes125Profile",
    pointmap="res125",
    fault_points={n: "res125" for n in _FAULTS},
)
