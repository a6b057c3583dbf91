"""The grid support a `sunspec_704` inverter executes itself, from the registers it serves:
705 volt-var, 706 volt-watt, 711 frequency droop, 704 constant power factor.

Each responds as a first-order lag that reaches 90 % of a step within its `RspTms` (705/706
`Crv.RspTms`, 711 `Ctl.RspTms`); deadbands are 711 `DbOf`/`DbUf` and the flat parts of the
curves. Voltages are in % of the nominal voltage of the grid the inverter is connected to.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from adapters.simulator.physics.common import put

MODEL_DATA = {705: {"NPt": 4, "NCrv": 1}, 706: {"NPt": 2, "NCrv": 1}, 711: {"NCtl": 1}}
LN10 = math.log(10.0)  # 90 % of a step after RspTms: tau = RspTms / ln 10


def init_grid_models(img: Any) -> None:
    """Disabled, with the IEEE 1547 category B default curves and a 5 s / 10 s response."""
    put(img.set_raw, 705, (("V_SF", -1), ("DeptRef_SF", -1), ("RspTms_SF", -1)))
    put(img.set_raw, 706, (("V_SF", -1), ("DeptRef_SF", -1), ("RspTms_SF", -1)))
    put(img.set_raw, 711, (("Db_SF", -3), ("K_SF", -3), ("RspTms_SF", -1)))
    vv = ((92.0, 44.0), (98.0, 0.0), (102.0, 0.0), (108.0, -44.0))
    put(img.set, 705, (("Ena", 0), ("NPt", 4), ("NCrv", 1), ("Crv.ActPt", 4), ("Crv.DeptRef", 2),
                       ("Crv.RspTms", 10.0), ("Crv.VRef", 100.0), ("Crv.ReadOnly", 0)))  # fmt: skip
    for i, (v, q) in enumerate(vv, start=1):
        put(img.set, 705, ((f"Crv.Pt.{i}.V", v), (f"Crv.Pt.{i}.Var", q)))
    put(img.set, 706, (("Ena", 0), ("NPt", 2), ("NCrv", 1), ("Crv.ActPt", 2), ("Crv.DeptRef", 1),
                       ("Crv.RspTms", 10.0), ("Crv.ReadOnly", 0),
                       ("Crv.Pt.1.V", 106.0), ("Crv.Pt.1.W", 100.0),
                       ("Crv.Pt.2.V", 110.0), ("Crv.Pt.2.W", 0.0)))  # fmt: skip
    put(img.set, 711, (("Ena", 0), ("NCtl", 1), ("Ctl.DbOf", 0.036), ("Ctl.DbUf", 0.036),
                       ("Ctl.KOf", 0.05), ("Ctl.KUf", 0.05), ("Ctl.RspTms", 5.0),
                       ("Ctl.PMin", 0), ("Ctl.ReadOnly", 0)))  # fmt: skip
    put(img.set, 704, (("PFWInjEna", 0), ("PFWInj.PF", 1.0), ("PFWInj.Ext", 0)))


def _f(img: Any, model: int, point: str, default: float = 0.0) -> float:
    v = img.get(model, point)
    return float(v) if isinstance(v, int | float) else default


def curve(img: Any, model: int, y: str) -> list[tuple[float, float]]:
    n = int(_f(img, model, "Crv.ActPt", 0))
    return [(_f(img, model, f"Crv.Pt.{i}.V"), _f(img, model, f"Crv.Pt.{i}.{y}"))
            for i in range(1, n + 1)]  # fmt: skip


def interp(pts: list[tuple[float, float]], x: float) -> float:
    if not pts:
        return 0.0
    if x <= pts[0][0]:
        return pts[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        if x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return pts[-1][1]


def lag(now: float, target: float, rsp_s: float, dt: float) -> float:
    """One step of a first-order response reaching 90 % of a step in `rsp_s`."""
    if rsp_s <= 0:
        return target
    return now + (target - now) * (1.0 - math.exp(-dt * LN10 / rsp_s))


class GridSupport:
    """The responding state (droop W, volt-watt cap, Q) of one inverter."""

    def __init__(self) -> None:
        self.droop_w = 0.0
        self.vw_cut_w = 0.0
        self.var = 0.0

    def delta(self, img: Any, base_w: float, wmax: float, v_pct: float, hz: float,
              hz_nom: float, dt: float) -> float:  # fmt: skip
        target = 0.0
        if img.get(711, "Ena") == 1:
            db_uf, db_of = _f(img, 711, "Ctl.DbUf", 0.036), _f(img, 711, "Ctl.DbOf", 0.036)
            k_uf, k_of = (
                _f(img, 711, "Ctl.KUf", 0.05) or 0.05,
                _f(img, 711, "Ctl.KOf", 0.05) or 0.05,
            )
            if hz < hz_nom - db_uf:
                target = (hz_nom - db_uf - hz) / hz_nom / k_uf * wmax
            elif hz > hz_nom + db_of:
                target = -(hz - hz_nom - db_of) / hz_nom / k_of * wmax
        self.droop_w = lag(self.droop_w, target, _f(img, 711, "Ctl.RspTms", 5.0), dt)
        p = base_w + self.droop_w
        cut = 0.0
        if img.get(706, "Ena") == 1:
            cap = interp(curve(img, 706, "W"), v_pct) / 100.0 * wmax
            cut = min(0.0, cap - p)
        self.vw_cut_w = lag(self.vw_cut_w, cut, _f(img, 706, "Crv.RspTms", 10.0), dt)
        return self.droop_w + self.vw_cut_w

    def reactive(self, img: Any, p_w: float, wmax: float, v_pct: float, dt: float) -> float:
        target, rsp = 0.0, 0.0
        if img.get(705, "Ena") == 1:
            target = interp(curve(img, 705, "Var"), v_pct) / 100.0 * wmax
            rsp = _f(img, 705, "Crv.RspTms", 10.0)
        elif img.get(704, "PFWInjEna") == 1:
            pf = _f(img, 704, "PFWInj.PF", 1.0)
            if 0.0 < pf < 1.0:
                q = abs(p_w) * math.tan(math.acos(pf))
                target = q if int(_f(img, 704, "PFWInj.Ext", 0)) == 0 else -q
        self.var = lag(self.var, target, rsp, dt)
        return self.var
