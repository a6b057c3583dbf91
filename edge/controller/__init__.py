"""The BESS controller: pure decision logic (machine, limits, SoC protection, faults, profiles)
inside a thin MQTT shell (shell.py). See README.md in this folder."""
