"""Fault causes as data. Evaluating them is pure: telemetry in, list of Fault out."""

from __future__ import annotations

from dataclasses import dataclass

# Model 802 Evt1 bits (sunspec2/models/json/model_802.json). The *_ALARM bits and the hardware
# errors demand a trip (B4); *_WARNING bits are reported but do not trip.
EVT1_BITS: dict[int, str] = {
    0: "COMMUNICATION_ERROR",
    1: "OVER_TEMP_ALARM",
    2: "OVER_TEMP_WARNING",
    3: "UNDER_TEMP_ALARM",
    4: "UNDER_TEMP_WARNING",
    5: "OVER_CHARGE_CURRENT_ALARM",
    6: "OVER_CHARGE_CURRENT_WARNING",
    7: "OVER_DISCHARGE_CURRENT_ALARM",
    8: "OVER_DISCHARGE_CURRENT_WARNING",
    9: "OVER_VOLT_ALARM",
    10: "OVER_VOLT_WARNING",
    11: "UNDER_VOLT_ALARM",
    12: "UNDER_VOLT_WARNING",
    13: "UNDER_SOC_MIN_ALARM",
    14: "UNDER_SOC_MIN_WARNING",
    15: "OVER_SOC_MAX_ALARM",
    16: "OVER_SOC_MAX_WARNING",
    17: "VOLTAGE_IMBALANCE_WARNING",
    18: "TEMPERATURE_IMBALANCE_ALARM",
    19: "TEMPERATURE_IMBALANCE_WARNING",
    20: "CONTACTOR_ERROR",
    21: "FAN_ERROR",
    22: "GROUND_FAULT",
    23: "OPEN_DOOR_ERROR",
    24: "CURRENT_IMBALANCE_WARNING",
    25: "OTHER_ALARM",
    26: "OTHER_WARNING",
    27: "RESERVED_1",
    28: "CONFIGURATION_ALARM",
    29: "CONFIGURATION_WARNING",
}
EVT1_TRIP_BITS = frozenset(
    b for b, n in EVT1_BITS.items() if n.endswith(("_ALARM", "_ERROR")) or n == "GROUND_FAULT"
)

# Model 701 Alrm bits: every one of them is an inverter fault.
ALRM_701_BITS: dict[int, str] = {
    0: "GROUND_FAULT",
    1: "DC_OVER_VOLT",
    2: "AC_DISCONNECT",
    3: "DC_DISCONNECT",
    4: "GRID_DISCONNECT",
    5: "CABINET_OPEN",
    6: "MANUAL_SHUTDOWN",
    7: "OVER_TEMP",
    8: "OVER_FREQUENCY",
    9: "UNDER_FREQUENCY",
    10: "AC_OVER_VOLT",
    11: "AC_UNDER_VOLT",
    12: "BLOWN_STRING_FUSE",
    13: "UNDER_TEMP",
    14: "MEMORY_LOSS",
    15: "HW_TEST_FAILURE",
    16: "MANUFACTURER_ALRM",
}

BATTERY_STATE_FAULT = 99
BATTERY_STATE_CONNECTED = 3


@dataclass(frozen=True)
class Fault:
    """One named fault cause. `code` is stable (topics.md), `detail` is for humans."""

    code: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "detail": self.detail}


def bit_names(value: int, names: dict[int, str], only: frozenset[int] | None = None) -> list[str]:
    """The set bits of `value` as 'bit N NAME' strings (unknown bits are named by number)."""
    out = []
    for bit in range(32):
        if value >> bit & 1 and (only is None or bit in only):
            out.append(f"bit {bit} {names.get(bit, 'UNKNOWN')}")
    return out


def as_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def battery_faults(state: object, evt1: object) -> list[Fault]:
    """802 State==FAULT and trip-worthy Evt1 alarm bits (B4)."""
    out: list[Fault] = []
    if as_int(state) == BATTERY_STATE_FAULT:
        out.append(Fault("battery_state_fault", "802 State is FAULT (99)"))
    bits = as_int(evt1)
    if bits:
        for name in bit_names(bits, EVT1_BITS, EVT1_TRIP_BITS):
            out.append(Fault("battery_alarm", f"Evt1 {name}"))
    return out
