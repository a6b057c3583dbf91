"""Initial register values of the battery-inverter profiles (sunspec, legacy, res125).

Scale factors follow the rating; the physics in `inverter.py` computes the rest.
"""

from __future__ import annotations

from adapters.simulator.physics.common import NOMINAL_LL_V, pick_sf, put
from adapters.simulator.registers import PointMapImage, SunSpecImage


def init_701_702(img: SunSpecImage, r: float, cha_w: float) -> None:
    """Models 701/702 of a DER rated `r` W that can absorb `cha_w` W (0 for PV)."""
    wsf = pick_sf(r * 1.5)
    put(
        img.set_raw,
        701,
        (
            ("W_SF", wsf),
            ("VA_SF", wsf),
            ("Var_SF", wsf),
            ("PF_SF", -3),
            ("A_SF", -1),
            ("V_SF", -1),
            ("Hz_SF", -2),
            ("TotWh_SF", 0),
            ("TotVarh_SF", 0),
            ("Tmp_SF", -1),
        ),
    )
    put(
        img.set_raw,
        702,
        (
            ("W_SF", wsf),
            ("PF_SF", -3),
            ("VA_SF", wsf),
            ("Var_SF", wsf),
            ("V_SF", -1),
            ("A_SF", -1),
            ("S_SF", 0),
        ),
    )
    put(
        img.set,
        701,
        (
            ("ACType", 2),
            ("St", 1),
            ("InvSt", 7),
            ("ConnSt", 1),
            ("Alrm", 0),
            ("DERMode", 1),
            ("Hz", 60.0),
            ("LLV", NOMINAL_LL_V),
            ("LNV", 277.0),
            ("TmpCab", 30.0),
            ("TmpSnk", 35.0),
            ("TotWhInj", 0),
            ("TotWhAbs", 0),
            ("ThrotPct", 0),
            ("ThrotSrc", 0),
        ),
    )
    put(
        img.set,
        702,
        (
            ("WMaxRtg", r),
            ("VAMaxRtg", r),
            ("WChaRteMaxRtg", cha_w),
            ("WDisChaRteMaxRtg", r if cha_w else 0),
            ("VNomRtg", NOMINAL_LL_V),
            ("WMax", r),
            ("VAMax", r),
            ("WChaRteMax", cha_w),
            ("WDisChaRteMax", r if cha_w else 0),
            ("VNom", NOMINAL_LL_V),
            ("CtrlModes", 0),
        ),
    )


def init_sunspec(img: SunSpecImage, r: float) -> None:
    """Models 701/702/704 of a battery inverter rated `r` W."""
    init_701_702(img, r, r)
    put(
        img.set_raw,
        704,
        (
            ("PF_SF", -3),
            ("WMaxLimPct_SF", -1),
            ("WSet_SF", 0),
            ("WSetPct_SF", -1),
            ("VarSet_SF", 0),
            ("VarSetPct_SF", -1),
        ),
    )
    put(
        img.set,
        704,
        (
            ("WMaxLimPctEna", 0),
            ("WMaxLimPct", 100.0),
            ("WMaxLimPctRvrt", 100.0),
            ("WMaxLimPctEnaRvrt", 0),
            ("WMaxLimPctRvrtTms", 0),
            ("WMaxLimPctRvrtRem", 0),
            ("WSetEna", 0),
            ("WSetMod", 1),
            ("WSet", 0),
            ("WSetRvrt", 0),
            ("WSetPct", 0.0),
            ("WSetPctRvrt", 0.0),
            ("WSetEnaRvrt", 0),
            ("WSetRvrtTms", 0),
            ("WSetRvrtRem", 0),
            ("WRmp", 0),
            ("AntiIslEna", 0),
        ),
    )


def init_legacy(img: SunSpecImage, r: float) -> None:
    """Models 103/120/121/123/124 of a battery inverter rated `r` W."""
    wsf = pick_sf(r * 1.5)
    put(
        img.set_raw,
        103,
        (
            ("A_SF", -1),
            ("V_SF", -1),
            ("W_SF", wsf),
            ("Hz_SF", -2),
            ("VA_SF", wsf),
            ("VAr_SF", wsf),
            ("PF_SF", -3),
            ("WH_SF", 0),
            ("DCA_SF", -1),
            ("DCV_SF", -1),
            ("DCW_SF", wsf),
            ("Tmp_SF", -1),
        ),
    )
    put(
        img.set_raw,
        120,
        (
            ("WRtg_SF", wsf),
            ("VARtg_SF", wsf),
            ("VArRtg_SF", wsf),
            ("ARtg_SF", -1),
            ("PFRtg_SF", -3),
            ("WHRtg_SF", 0),
            ("AhrRtg_SF", 0),
            ("MaxChaRte_SF", wsf),
            ("MaxDisChaRte_SF", wsf),
        ),
    )
    put(
        img.set_raw,
        121,
        (
            ("WMax_SF", wsf),
            ("VRef_SF", -1),
            ("VRefOfs_SF", -1),
            ("VMinMax_SF", -1),
            ("VAMax_SF", wsf),
            ("VArMax_SF", wsf),
            ("WGra_SF", 0),
            ("PFMin_SF", -3),
            ("MaxRmpRte_SF", 0),
            ("ECPNomHz_SF", -2),
        ),
    )
    put(img.set_raw, 123, (("WMaxLimPct_SF", -1), ("OutPFSet_SF", -3), ("VArPct_SF", -1)))
    put(
        img.set_raw,
        124,
        (
            ("WChaMax_SF", wsf),
            ("WChaDisChaGra_SF", 0),
            ("VAChaMax_SF", wsf),
            ("MinRsvPct_SF", -1),
            ("ChaState_SF", -1),
            ("StorAval_SF", 0),
            ("InBatV_SF", -1),
            ("InOutWRte_SF", -1),
        ),
    )
    put(
        img.set,
        103,
        (
            ("Hz", 60.0),
            ("PhVphA", 277.0),
            ("PhVphB", 277.0),
            ("PhVphC", 277.0),
            ("St", 8),
            ("Evt1", 0),
            ("Evt2", 0),
            ("WH", 1),
        ),
    )
    put(
        img.set,
        120,
        (("DERTyp", 82), ("WRtg", r), ("VARtg", r), ("MaxChaRte", r), ("MaxDisChaRte", r)),
    )
    put(img.set, 121, (("WMax", r), ("VRef", 480.0), ("VAMax", r), ("ECPNomHz", 60.0)))
    put(
        img.set,
        123,
        (
            ("Conn", 1),
            ("WMaxLimPct", 100.0),
            ("WMaxLim_Ena", 0),
            ("Conn_RvrtTms", 0),
            ("WMaxLimPct_RvrtTms", 0),
        ),
    )
    put(
        img.set,
        124,
        (
            ("WChaMax", r),
            ("StorCtl_Mod", 0),
            ("OutWRte", 0.0),
            ("InWRte", 0.0),
            ("InOutWRte_RvrtTms", 0),
            ("ChaSt", 6),
        ),
    )


def init_res125(img: PointMapImage, heartbeat_initial: int) -> None:
    """The Rhombus RES-125 registers that the physics does not compute."""
    p = "res125"
    put(
        img.set,
        p,
        (
            ("DCLinkVoltage", 800.0),
            ("DCInputVoltage", 800.0),
            ("GridFrequency", 60.0),
            ("HeatSinkTemperature", 35.0),
            ("AmbientTemperature", 25.0),
            ("PhaseAGridVoltageRMS", 277.0),
            ("PhaseBGridVoltageRMS", 277.0),
            ("PhaseCGridVoltageRMS", 277.0),
            ("Heartbeat", heartbeat_initial),
            ("OverVoltageLimit1", 110.0),
            ("OverVoltageLimit2", 120.0),
            ("UnderVoltageLimit1", 88.0),
            ("UnderVoltageLimit2", 50.0),
            ("OverFrequencyLimit1", 60.5),
            ("UnderFrequencyLimit1", 59.3),
            ("ReconnectDelay", 300),
            ("RandomNumber", 4242),
        ),
    )
