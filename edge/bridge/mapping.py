"""2030.5 resources -> SunSpec-named points `{model}/{point}`, per the seed doc's field table.

Follows the seed table (not the original's swapped `b802_SoC`/`b802_State`, B11). Values get
their power-of-ten multipliers applied; 2030.5 `PerCent` (hundredths of a percent) becomes %.
No I/O.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from edge.bridge import models as m


def _p(unit: str | None, type_: str, source: str, access: str = "R") -> dict[str, Any]:
    return {"unit": unit, "type": type_, "access": access, "source": source}


# Point keys the bridge's code uses by name (every key is in POINTS below).
MD, OPT, SN, VR = "1/Md", "1/Opt", "1/SN", "1/Vr"
WRTG, WMAX, WCHAMAX, DCWH = "120/WRtg", "121/WMax", "124/WChaMax", "404/DCWh"
IDENTITY_POINTS = (MD, VR)  # a change republishes meta

# topic suffix -> meta entry (topics.md `meta.points`)
POINTS: dict[str, dict[str, Any]] = {
    "1/Md": _p(None, "string", "DeviceInformation.mfModel"),
    "1/Opt": _p(None, "string", "DeviceInformation.lFDI"),
    "1/SN": _p(None, "string", "EndDevice.sFDI"),
    "1/Vr": _p(None, "string", "DeviceInformation.mfHwVer"),
    "113/A": _p("A", "float", "MirrorMeterReading PhaseCurrentAvg"),
    "113/DCA": _p("A", "float", "MirrorMeterReading InstantPackCurrent"),
    "113/DCV": _p("V", "float", "MirrorMeterReading LineVoltageAvg"),
    "113/DCW": _p("W", "float", "MirrorMeterReading PhasePowerAvg"),
    "113/PF": _p("%", "float", "MirrorMeterReading PhasePFA"),
    "113/WH": _p("Wh", "float", "MirrorMeterReading EnergyIMP"),
    "120/AhrRtg": _p("Ah", "float", "DERCapability.rtgMaxAh"),
    "120/ARtg": _p("A", "float", "DERCapability.rtgMaxA"),
    "120/MaxChaRte": _p("W", "float", "DERCapability.rtgMaxChargeRateW"),
    "120/MaxDisChaRte": _p("W", "float", "DERCapability.rtgMaxDischargeRateW"),
    "120/WHRtg": _p("Wh", "float", "DERCapability.rtgMaxWh"),
    "120/WRtg": _p("W", "float", "DERCapability.rtgMaxW"),
    "121/WMax": _p("W", "float", "DERSettings.setMaxChargeRateW (default 120/WRtg)"),
    "122/ActWh": _p("Wh", "float", "MirrorMeterReading EnergyEXP"),
    "122/StorConn": _p(None, "enum", "DERStatus.storConnectStatus"),
    "124/WChaMax": _p("W", "float", "DERControl opModFixedW", "RW"),
    "403/Tmp": _p("C", "float", "MirrorMeterReading InstantPackTemp"),
    "404/DCW": _p("W", "float", "PowerStatus.PEVInfo.chargingPowerNow"),
    "404/DCWh": _p("Wh", "float", "DERAvailability.availabilityDuration/3600*WMax"),
    "802/ChaSt": _p(None, "enum", "DERStatus.storageModeStatus"),
    "802/LocRemCtl": _p(None, "enum", "DERStatus.localControlModeStatus"),
    "802/SoC": _p("%WHRtg", "float", "DERStatus.stateOfChargeStatus"),
    "802/State": _p(None, "enum", "DERStatus.inverterStatus"),
}

MODELS = sorted({int(k.split("/")[0]) for k in POINTS})

# MirrorMeterReading.description -> point (the original identified readings by description)
READING_POINTS: dict[str, str] = {
    "PhaseCurrentAvg": "113/A",
    "InstantPackCurrent": "113/DCA",
    "LineVoltageAvg": "113/DCV",
    "PhasePowerAvg": "113/DCW",
    "PhasePFA": "113/PF",
    "EnergyIMP": "113/WH",
    "EnergyEXP": "122/ActWh",
    "InstantPackTemp": "403/Tmp",
}


def scale(value: int | float, multiplier: int | None) -> float:
    """value x 10^multiplier, exact in decimal (no 0.30000000000000004)."""
    return float(Decimal(str(value)).scaleb(multiplier or 0))


def uv(x: Any) -> float | None:
    """A {multiplier, value} element -> float, or None when absent."""
    if x is None:
        return None
    return scale(x.value, x.multiplier)


def device_information(di: m.DeviceInformation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if di.mfModel is not None:
        out["1/Md"] = di.mfModel
    if di.lFDI is not None:
        out["1/Opt"] = di.lFDI
    if di.mfHwVer is not None:
        out["1/Vr"] = di.mfHwVer
    return out


def der_capability(cap: m.DERCapabilityIn) -> dict[str, Any]:
    fields = {
        "120/AhrRtg": cap.rtgMaxAh,
        "120/ARtg": cap.rtgMaxA,
        "120/MaxChaRte": cap.rtgMaxChargeRateW,
        "120/MaxDisChaRte": cap.rtgMaxDischargeRateW,
        "120/WHRtg": cap.rtgMaxWh,
        "120/WRtg": cap.rtgMaxW,
    }
    return {k: uv(v) for k, v in fields.items() if v is not None}


def wmax(settings: m.DERSettingsIn | None, wrtg: float | None) -> float | None:
    """b121_WMax: DERSettings.setMaxChargeRate(W) per the seed table, defaulting to WRtg."""
    if settings is not None and settings.setMaxChargeRateW is not None:
        return uv(settings.setMaxChargeRateW)
    return wrtg


# 2030.5 codes -> SunSpec codes, where the two standards code the same thing differently
# (README "Enumerations"). A 2030.5 value without a SunSpec counterpart becomes null.
INVERTER_STATUS_TO_802_STATE: dict[int, int | None] = {
    0: None,  # not applicable / unknown
    1: 1,  # off -> DISCONNECTED
    2: 4,  # sleeping / low output -> STANDBY
    3: 2,  # starting up -> INITIALIZING
    4: 3,  # tracking MPPT -> CONNECTED
    5: 3,  # forced power reduction -> CONNECTED
    6: 6,  # shutting down -> SUSPENDING
    7: 99,  # faults -> FAULT
    8: 4,  # standby -> STANDBY
    9: None,  # test mode: SunSpec 802 has no such state
    10: None,  # as defined in manufacturer status
}
LOCAL_CONTROL_TO_LOCREMCTL = {0: 1, 1: 0}  # 2030.5 0 local, 1 remote; SunSpec 0 REMOTE, 1 LOCAL
STORAGE_MODE_TO_CHAST = {0: 4, 1: 3, 2: 6}  # charging -> CHARGING, discharging, holding
CONNECT_STATUS_BITS = 0x0F  # bits 0-3 (connected, available, operating, test) are the same;
# bit 4 (fault) has no StorConn bit: a fault shows as 802/State FAULT via inverterStatus.


def _status_int(v: m.StatusValue | None, hex_: bool = False) -> int | None:
    if v is None or v.value is None:
        return None
    text = v.value.strip()
    try:
        return int(text, 16) if hex_ else int(text)
    except ValueError:
        return None


def der_status(st: m.DERStatusIn) -> dict[str, Any]:
    """DERStatus -> points, enumerations translated to SunSpec codes."""
    out: dict[str, Any] = {}
    if st.storConnectStatus is not None:
        bits = _status_int(st.storConnectStatus, hex_=True)  # HexBinary8 bitmap
        out["122/StorConn"] = None if bits is None or bits > 0xFF else bits & CONNECT_STATUS_BITS
    if st.localControlModeStatus is not None:
        code = _status_int(st.localControlModeStatus)
        out["802/LocRemCtl"] = LOCAL_CONTROL_TO_LOCREMCTL.get(code) if code is not None else None
    if st.stateOfChargeStatus is not None:
        soc = _status_int(st.stateOfChargeStatus)
        out["802/SoC"] = None if soc is None else scale(soc, -2)  # PerCent: hundredths of %
    if st.inverterStatus is not None:
        code = _status_int(st.inverterStatus)
        out["802/State"] = None if code is None else INVERTER_STATUS_TO_802_STATE.get(code)
    if st.storageModeStatus is not None:
        code = _status_int(st.storageModeStatus)
        out["802/ChaSt"] = None if code is None else STORAGE_MODE_TO_CHAST.get(code)
    return out


def derived_points(wmax_w: float | None, availability_s: int | None) -> dict[str, Any]:
    """Points computed from several resources: WMax, and DCWh from availability and WMax."""
    out: dict[str, Any] = {}
    if wmax_w is not None:
        out[WMAX] = wmax_w
    dcwh = availability_wh(availability_s, wmax_w)
    if dcwh is not None:
        out[DCWH] = dcwh
    return out


def availability_wh(duration_s: int | None, wmax_w: float | None) -> float | None:
    """b404_DCWh = availabilityDuration / 3600 * WMax (seed formula)."""
    if duration_s is None or wmax_w is None:
        return None
    return round(duration_s / 3600 * wmax_w, 6)


def power_status(ps: m.PowerStatus) -> dict[str, Any]:
    if ps.PEVInfo_ is None or ps.PEVInfo_.chargingPowerNow is None:
        return {}
    return {"404/DCW": uv(ps.PEVInfo_.chargingPowerNow)}


def reading_point(description: str | None) -> str | None:
    return READING_POINTS.get((description or "").strip())
