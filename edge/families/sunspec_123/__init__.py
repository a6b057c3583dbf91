"""Legacy SunSpec inverter: 103 status, 120/121 ratings and settings, 123 immediate controls,
124 storage. No grid-support curves: the controller runs them from the meter."""

from edge.families import Family

FAMILY = Family(
    name="sunspec_123",
    order=1,
    sim_profile="legacy",
    description="802 battery + legacy 103/120/121/123/124 inverter",
    profile="edge.families.sunspec_123.profile:SunSpec123Profile",
    models=(1, 103, 120, 121, 123, 124),
    fault_points={"Evt1": 103, "St": 103},
)
