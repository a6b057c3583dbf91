"""Grid support written to a `sunspec_704` inverter: 711 droop, 705 volt-var, 706 volt-watt
and the 704 power-factor points (planned by the profile, each confirmed by read-back), and
what the inverter holds compared with the site file. Point paths are the adapter's
(`Crv/1/Pt/2/V`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge.controller.grid.settings import GridSettings

Read = Callable[[str, str], float | None]
V_TOL, PCT_TOL, HZ_TOL, K_TOL, S_TOL, PF_TOL = 0.051, 0.051, 0.0006, 0.0006, 0.051, 0.0006


def wanted(g: GridSettings, name: str) -> list[tuple[str, str, Any, float]]:
    """(model, point, value, tolerance) that make the inverter run function `name` as the
    site file says; enabling comes last, after the curve it runs."""
    f = getattr(g, name)
    if name == "freq_watt":
        if not f.enabled:
            return [("711", "Ena", 0, 0.5)]
        return [
            ("711", "Ctl/1/DbOf", f.db_over_hz, HZ_TOL),
            ("711", "Ctl/1/DbUf", f.db_under_hz, HZ_TOL),
            ("711", "Ctl/1/KOf", f.k_over, K_TOL),
            ("711", "Ctl/1/KUf", f.k_under, K_TOL),
            ("711", "Ctl/1/RspTms", f.response_s, S_TOL),
            ("711", "Ena", 1, 0.5),
        ]
    if name in ("volt_var", "volt_watt"):
        model, y = ("705", "Var") if name == "volt_var" else ("706", "W")
        if not f.enabled:
            return [(model, "Ena", 0, 0.5)]
        out: list[tuple[str, str, Any, float]] = []
        for i, (v, q) in enumerate(f.points, start=1):
            out += [(model, f"Crv/1/Pt/{i}/V", v, V_TOL), (model, f"Crv/1/Pt/{i}/{y}", q, PCT_TOL)]
        out += [
            (model, "Crv/1/ActPt", len(f.points), 0.5),
            (model, "Crv/1/RspTms", f.response_s, S_TOL),
            (model, "Ena", 1, 0.5),
        ]
        return out
    if name == "pf":
        if not f.enabled:
            return [("704", "PFWInjEna", 0, 0.5)]
        ext = 0 if f.excitation == "over" else 1
        return [
            ("704", "PFWInj/PF", f.pf, PF_TOL),
            ("704", "PFWInj/Ext", ext, 0.5),
            ("704", "PFWInjEna", 1, 0.5),
        ]
    return []


def capacity_problem(g: GridSettings, name: str, read: Read) -> str | None:
    """Why the inverter cannot hold the site file's curve (more points than its NPt)."""
    if name not in ("volt_var", "volt_watt") or not getattr(g, name).enabled:
        return None
    model = "705" if name == "volt_var" else "706"
    npt = read(model, "NPt")
    n = len(getattr(g, name).points)
    if npt is not None and n > npt:
        return f"grid.{name}.points: {n} points, the inverter's {model} holds {npt:g}"
    return None


def differences(g: GridSettings, names: frozenset[str], read: Read) -> list[str]:
    """What the inverter holds that differs from the site file, one line per point."""
    out = []
    for name in sorted(names):
        for model, point, value, tol in wanted(g, name):
            held = read(model, point)
            if held is None:
                continue  # not read yet (or not implemented): nothing to compare
            if abs(float(held) - float(value)) > tol:
                out.append(
                    f"{name}: {model}/{point} is {held:g} on the inverter,"
                    f" {value:g} in the site file"
                )
    return out
