"""Controller profile of the sunspec_704 family: 802 battery + 701/702/704 inverter."""

from __future__ import annotations

import math
from typing import Any

from edge.controller.faults import ALRM_701_BITS, Fault, as_int, bit_names
from edge.controller.limits import to_device
from edge.controller.profiles import Plan, Profile
from edge.families.sunspec_704 import grid


class SunSpec704Profile(Profile):
    """802 battery + IEEE 1547 inverter (701 status, 702 ratings, 704 WSet with revert timer)."""

    name = "sunspec_704"
    inverter_model = "704"
    native_grid = frozenset({"volt_var", "volt_watt", "freq_watt", "pf"})

    def _read(self, model: str, point: str) -> float | None:
        return self.t.number(self.inv, model, point)

    def write_grid(self, g: Any, name: str) -> Plan:
        return [self.put(self.inv, m, p, v, tol) for m, p, v, tol in grid.wanted(g, name)]

    def grid_capacity_problem(self, g: Any, name: str) -> str | None:
        return grid.capacity_problem(g, name, self._read)

    def grid_differences(self, g: Any) -> list[str]:
        return grid.differences(g, self.native_grid, self._read)

    def restart_report(self) -> dict[str, Any]:
        return {**super().restart_report(), "grid_differs": self.grid_differences(self.s.grid)}

    def enable_power_mode(self) -> Plan:
        m = self.inverter_model
        return [
            self.put(self.inv, m, "WSetMod", 1),  # WATTS
            self.put(self.inv, m, "WSetRvrtTms", int(self.s.lease_s)),
            self.put(self.inv, m, "WSet", 0),
            self.put(self.inv, m, "WSetEna", 1),
        ]

    def write_power(self, signed_w: float) -> Plan:
        v = math.trunc(to_device(signed_w, self.s.charge_sign))  # toward 0: never above a limit
        return [self.put(self.inv, self.inverter_model, "WSet", v, tol=self.w_tol(v))]

    def inverter_off(self) -> Plan:
        return [
            self.put(self.inv, self.inverter_model, "WSet", 0),
            self.put(self.inv, self.inverter_model, "WSetEna", 0),
        ]

    def inverter_rating(self) -> tuple[float | None, float | None]:
        n = self.t.number
        wmax = n(self.inv, "702", "WMaxRtg")
        cha = n(self.inv, "702", "WChaRteMaxRtg") or wmax
        dis = n(self.inv, "702", "WDisChaRteMaxRtg") or wmax
        for p, which in (("WChaRteMax", "c"), ("WDisChaRteMax", "d"), ("WMax", "b")):
            setting = n(self.inv, "702", p)
            if setting is not None and setting > 0:
                if which in "cb":
                    cha = setting if cha is None else min(cha, setting)
                if which in "db":
                    dis = setting if dis is None else min(dis, setting)
        r = self.s.inverter_rating_w
        if r is not None:
            cha = r if cha is None else min(cha, r)
            dis = r if dis is None else min(dis, r)
        return cha, dis

    def limit_points(self) -> set[tuple[str, str, str]]:
        pts = {
            (self.inv, "702", p)
            for p in (
                "WMaxRtg",
                "WChaRteMaxRtg",
                "WDisChaRteMaxRtg",
                "WMax",
                "WChaRteMax",
                "WDisChaRteMax",
            )
        }
        return super().limit_points() | pts

    def inverter_faults(self) -> list[Fault]:
        out = []
        alrm = as_int(self.t.get(self.inv, "701", "Alrm"))
        if alrm:
            out += [
                Fault("inverter_alarm", f"701 Alrm {b}") for b in bit_names(alrm, ALRM_701_BITS)
            ]
        if as_int(self.t.get(self.inv, "701", "InvSt")) == 6:
            out.append(Fault("inverter_fault", "701 InvSt is FAULT (6)"))
        return out

    def inverter_faults_active(self) -> list[Fault]:
        if as_int(self.t.get(self.inv, "701", "St")) == 0:
            return [Fault("inverter_fault", "701 St is OFF while in power mode")]
        return []

    def inverter_energised(self) -> dict[str, Any]:
        w = self.t.number(self.inv, "701", "W")
        wset = self.t.number(self.inv, self.inverter_model, "WSet")
        return {
            "inverter_w": w,
            "inverter_wset": wset,
            "inverter_wset_ena": self.t.get(self.inv, self.inverter_model, "WSetEna"),
            "inverter_exporting": bool(w and abs(w) > 1.0) or bool(wset),
        }
