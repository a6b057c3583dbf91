"""SunSpec IEEE 1547 DER inverter: 701 status, 702 ratings, 704 controls, and the grid-support
curves 705 (volt-var), 706 (volt-watt), 711 (frequency droop), which it executes itself."""

from edge.families import Family

FAMILY = Family(
    name="sunspec_704",
    order=0,
    sim_profile="sunspec",
    description="802 battery + 701/702/704 inverter (with 705/706/711)",
    profile="edge.families.sunspec_704.profile:SunSpec704Profile",
    models=(1, 701, 702, 704, 705, 706, 711),
    fault_points={"Alrm": 701, "St": 701, "InvSt": 701},
    native_grid=frozenset({"volt_var", "volt_watt", "freq_watt", "pf"}),
)
