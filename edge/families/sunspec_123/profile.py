"""Controller profile of the sunspec_123 family: 802 battery + legacy 103/120/121/123/124."""

from __future__ import annotations

import math
from typing import Any

from edge.controller.faults import ALRM_701_BITS, Fault, as_int, bit_names
from edge.controller.profiles import Plan, Profile, WriteFailed


class SunSpec123Profile(Profile):
    """802 battery + legacy SunSpec inverter (103 status, 121 WMax, 123 Conn, 124 storage).

    A setpoint is a forced charge or discharge rate: `StorCtl_Mod` bit 0 (CHARGE) with
    `InWRte` in % of `WChaMax`, or bit 1 (DISCHARGE) with `OutWRte` in % of `WMax`; the other
    rate is zeroed first so the two never add up.
    """

    name = "sunspec_123"
    inverter_model = "124"
    supports_var = True

    def write_var(self, var: float) -> Plan:
        """123 `VArWMaxPct` (% of WMax, `VArPct_Mod` 1), enabled by `VArPct_Ena`."""
        wmax = self._wmax()
        if wmax is None or wmax <= 0:
            raise WriteFailed(self.inv, "123", "VArWMaxPct", var, "WMax unknown")
        pct = max(-100.0, min(100.0, math.trunc(var / wmax * 1000) / 10))
        return [
            self.put(self.inv, "123", "VArPct_Mod", 1),
            self.put(self.inv, "123", "VArWMaxPct", pct, tol=0.051),
            self.put(self.inv, "123", "VArPct_Ena", 1),
        ]

    def _wmax(self) -> float | None:
        return self.t.number(self.inv, "121", "WMax")

    def _wchamax(self) -> float | None:
        return self.t.number(self.inv, "124", "WChaMax") or self._wmax()

    def enable_power_mode(self) -> Plan:
        return [
            self.put(self.inv, "123", "Conn", 1),
            self.put(self.inv, "124", "InOutWRte_RvrtTms", int(self.s.lease_s)),
            self.put(self.inv, "124", "InWRte", 0),
            self.put(self.inv, "124", "OutWRte", 0),
        ]

    def write_power(self, signed_w: float) -> Plan:
        if signed_w == 0:
            return [
                self.put(self.inv, "124", "OutWRte", 0, tol=0.051),
                self.put(self.inv, "124", "InWRte", 0, tol=0.051),
            ]
        charging = signed_w < 0
        ref = self._wchamax() if charging else self._wmax()
        rate, other, mode = ("InWRte", "OutWRte", 1) if charging else ("OutWRte", "InWRte", 2)
        if ref is None or ref <= 0:
            raise WriteFailed(self.inv, "124", rate, signed_w, "WChaMax/WMax unknown")
        pct = math.trunc(abs(signed_w) / ref * 1000) / 10  # toward 0, 0.1 % (InOutWRte_SF -1)
        return [
            self.put(self.inv, "124", other, 0, tol=0.051),
            self.put(self.inv, "124", rate, pct, tol=0.051),
            self.put(self.inv, "124", "StorCtl_Mod", mode),
        ]

    def inverter_off(self) -> Plan:
        return [
            self.put(self.inv, "124", "StorCtl_Mod", 0),
            self.put(self.inv, "123", "Conn", 0),
        ]

    def inverter_rating(self) -> tuple[float | None, float | None]:
        wmax = self.t.number(self.inv, "121", "WMax")
        wcha = self.t.number(self.inv, "124", "WChaMax")
        known = [x for x in (wmax, wcha) if x is not None]
        cha = min(known) if known else None
        r = self.s.inverter_rating_w
        if r is not None:
            cha = r if cha is None else min(cha, r)
            wmax = r if wmax is None else min(wmax, r)
        return cha, wmax

    def limit_points(self) -> set[tuple[str, str, str]]:
        return super().limit_points() | {(self.inv, "121", "WMax"), (self.inv, "124", "WChaMax")}

    def inverter_faults(self) -> list[Fault]:
        out = []
        if as_int(self.t.get(self.inv, "103", "St")) == 7:
            out.append(Fault("inverter_fault", "103 St is FAULT (7)"))
        evt = as_int(self.t.get(self.inv, "103", "Evt1"))
        if evt:
            out += [Fault("inverter_alarm", f"103 Evt1 {b}") for b in bit_names(evt, ALRM_701_BITS)]
        return out

    def inverter_faults_active(self) -> list[Fault]:
        if as_int(self.t.get(self.inv, "103", "St")) == 1:
            return [Fault("inverter_fault", "103 St is OFF while in power mode")]
        return []

    def inverter_energised(self) -> dict[str, Any]:
        w = self.t.number(self.inv, "103", "W")
        return {"inverter_w": w, "inverter_exporting": bool(w and abs(w) > 1.0)}
