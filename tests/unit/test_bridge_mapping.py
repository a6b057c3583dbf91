"""The seed table, field by field; B11 (swapped SoC/State) must not come back."""

from __future__ import annotations

import pytest

from edge.bridge import mapping
from edge.bridge import models as m
from edge.bridge.xmlcodec import parse

NS = m.NS

SEED_FIELDS = {
    "b1_Md", "b1_Opt", "b1_SN", "b1_Vr", "b113_A", "b113_DCA", "b113_DCV", "b113_DCW", "b113_PF",
    "b113_WH", "b120_AhrRtg", "b120_ARtg", "b120_MaxChaRte", "b120_MaxDisChaRte", "b120_WHRtg",
    "b120_WRtg", "b121_WMax", "b122_ActWh", "b122_StorConn", "b124_WChaMax", "b403_Tmp",
    "b404_DCW", "b404_DCWh", "b802_LocRemCtl", "b802_SoC", "b802_State",
}  # fmt: skip


def test_every_seed_field_has_a_topic() -> None:
    as_topics = {f"{f[1:].split('_', 1)[0]}/{f.split('_', 1)[1]}" for f in SEED_FIELDS}
    assert set(mapping.POINTS) - as_topics == {"802/ChaSt"}  # storageModeStatus, beyond the seed
    assert as_topics <= set(mapping.POINTS)
    assert {k for k, v in mapping.POINTS.items() if v["access"] == "RW"} == {"124/WChaMax"}


def _status(soc: int, inverter: int, local: int = 1, conn: str = "05") -> m.DERStatusIn:
    return parse(
        m.DERStatusIn,
        f'<DERStatus xmlns="{NS}"><readingTime>1</readingTime>'
        f"<stateOfChargeStatus><dateTime>1</dateTime><value>{soc}</value></stateOfChargeStatus>"
        f"<inverterStatus><dateTime>1</dateTime><value>{inverter}</value></inverterStatus>"
        f"<localControlModeStatus><dateTime>1</dateTime><value>{local}</value></localControlModeStatus>"
        f"<storConnectStatus><dateTime>1</dateTime><value>{conn}</value></storConnectStatus>"
        "</DERStatus>".encode(),
    )


def test_soc_and_state_are_not_swapped_b11() -> None:
    out = mapping.der_status(_status(soc=8150, inverter=4))
    assert out["802/SoC"] == 81.5  # stateOfChargeStatus, hundredths of a percent
    assert out["802/State"] == 3  # inverterStatus 4 (tracking MPPT) -> SunSpec CONNECTED
    assert out["802/LocRemCtl"] == 0  # 2030.5 1 = remote -> SunSpec 0 = REMOTE
    assert out["122/StorConn"] == 5  # HexBinary8 bitmap "05": CONNECTED | OPERATING


def test_capability_multipliers() -> None:
    cap = parse(
        m.DERCapabilityIn,
        f'<DERCapability xmlns="{NS}"><modesSupported>0</modesSupported>'
        "<rtgMaxA><multiplier>-1</multiplier><value>333</value></rtgMaxA>"
        "<rtgMaxAh><multiplier>2</multiplier><value>35</value></rtgMaxAh>"
        "<rtgMaxChargeRateW><multiplier>3</multiplier><value>5</value></rtgMaxChargeRateW>"
        "<rtgMaxDischargeRateW><multiplier>3</multiplier><value>6</value></rtgMaxDischargeRateW>"
        "<rtgMaxW><multiplier>0</multiplier><value>6500</value></rtgMaxW>"
        "<rtgMaxWh><multiplier>3</multiplier><value>13</value></rtgMaxWh><type>83</type>"
        "</DERCapability>".encode(),
    )
    assert mapping.der_capability(cap) == {
        "120/ARtg": 33.3, "120/AhrRtg": 3500.0, "120/MaxChaRte": 5000.0,
        "120/MaxDisChaRte": 6000.0, "120/WRtg": 6500.0, "120/WHRtg": 13000.0,
    }  # fmt: skip


def test_wmax_follows_the_seed_table_and_defaults_to_wrtg() -> None:
    st = parse(
        m.DERSettingsIn,
        f'<DERSettings xmlns="{NS}"><setMaxChargeRateW><multiplier>2</multiplier><value>45</value>'
        "</setMaxChargeRateW></DERSettings>".encode(),
    )
    assert mapping.wmax(st, 9999.0) == 4500.0
    assert mapping.wmax(None, 6000.0) == 6000.0
    empty = parse(m.DERSettingsIn, f'<DERSettings xmlns="{NS}"/>'.encode())
    assert mapping.wmax(empty, 6000.0) == 6000.0


@pytest.mark.parametrize(
    ("duration", "wmax", "wh"), [(3600, 5000.0, 5000.0), (55036, 20.0, 305.755556), (0, 5.0, 0.0)]
)
def test_dcwh_formula(duration: int, wmax: float, wh: float) -> None:
    assert mapping.availability_wh(duration, wmax) == wh
    assert mapping.availability_wh(duration, None) is None


def test_power_status_and_device_information() -> None:
    ps = parse(
        m.PowerStatus,
        f'<PowerStatus xmlns="{NS}"><PEVInfo><chargingPowerNow><multiplier>1</multiplier>'
        "<value>-350</value></chargingPowerNow></PEVInfo></PowerStatus>".encode(),
    )
    assert mapping.power_status(ps) == {"404/DCW": -3500.0}
    di = parse(
        m.DeviceInformation,
        f'<DeviceInformation xmlns="{NS}"><mfModel>X1</mfModel><mfHwVer>2</mfHwVer>'
        "<lFDI>AB</lFDI></DeviceInformation>".encode(),
    )
    assert mapping.device_information(di) == {"1/Md": "X1", "1/Vr": "2", "1/Opt": "AB"}


def test_readings_by_description() -> None:
    assert mapping.reading_point("InstantPackTemp") == "403/Tmp"
    assert mapping.reading_point("EnergyEXP") == "122/ActWh"
    assert mapping.reading_point("Gas Mirroring") is None
    assert mapping.scale(8125, -1) == 812.5
    assert mapping.scale(1, -1) + mapping.scale(2, -1) == pytest.approx(0.3)
