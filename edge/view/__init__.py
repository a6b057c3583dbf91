"""The live view: one web page for the site (state, mode, why, faults, SoC, powers, devices,
events, 2030.5 controls, trends) and the operator's controls, pushed over Server-Sent Events."""
