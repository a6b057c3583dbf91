"""`bess-edge backtest`: run a mode over recorded load (and PV) before commissioning.

    bess-edge backtest -c site.toml --mode peak_shaving --params '{"target_w": 50000}' \\
        --load load.csv [--pv pv.csv] [--days 1] [--step 1] [--out DIR]

The battery and inverter come from the site file's `[simulator]` section (the devices the
`[controller]` section names), the SoC bounds, backup reserve, ramp and configured limits
from `[controller]`; the mode, the pipeline and the inverter family's profile are the
controller's own code (backtest_engine.py, backtest_profile.py). Writes `kpis.json` and
`backtest.png` into DIR and prints the KPIs. A bad site file, mode, parameter or CSV row is
refused with the reason; exit status 2.

This module is imported by every `bess-edge` command (entry point), so the heavy parts are
imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.simulator.backtest_engine import Trace

EXIT_BAD_INPUT = 2
SCHEDULE = "schedule"  # --mode schedule: the site's [controller.schedule] picks the modes
DAY_S = 86_400.0


def _refuse(message: str) -> int:
    print(f"backtest: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _params(text: str | None) -> Any:
    if text is None:
        return {}
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"--params: not JSON ({exc})") from None


def run(args: argparse.Namespace) -> int:
    from adapters.simulator.backtest_engine import Backtest, BacktestError, ScheduledMode, kpis
    from adapters.simulator.grid_series import read_grid
    from adapters.simulator.series import SeriesError, read_series
    from edge.config import load_site
    from edge.controller.config import ControllerSettings
    from edge.controller.errors import Refused
    from edge.controller.modes.registry import load_mode, validate_params

    if not 0 < args.days <= 366:
        return _refuse(f"--days: {args.days:g} is outside 0..366")
    if not 0.1 <= args.step <= 60:
        return _refuse(f"--step: {args.step:g} s is outside 0.1..60")
    site = load_site(args.config)  # ConfigError: the CLI prints it and exits 2
    if site.simulator is None:
        return _refuse(f"{args.config}: no [simulator] section (the battery and inverter)")
    settings = site.controller or ControllerSettings()
    try:
        load = read_series(args.load)
        if args.mode == SCHEDULE:
            if settings.schedule is None:
                raise BacktestError("--mode schedule: the site file has no [controller.schedule]")
            if args.params is not None:
                raise BacktestError("--params: the schedule's windows carry the params")
            if not load.absolute:
                raise SeriesError(load.path, None, "--mode schedule needs ISO timestamps")
            params: Any = settings.schedule.raw
            mode: Any = ScheduledMode(settings.schedule)
        else:
            params = validate_params(args.mode, _params(args.params))
            mode = load_mode(args.mode, params)
        pv = read_series(args.pv) if args.pv else None
        seconds = args.days * DAY_S
        load.check_covers(load.start, load.start + seconds)
        if pv is not None:
            if pv.absolute != load.absolute:
                raise SeriesError(pv.path, None, "use the same time style as the load file")
            pv.check_covers(load.start, load.start + seconds)
        grid = read_grid(args.grid) if args.grid else None
        if grid is not None:
            if grid[0].absolute != load.absolute:
                raise SeriesError(grid[0].path, None, "use the same time style as the load file")
            grid[0].check_covers(load.start, load.start + seconds)
            if not settings.grid.enabled():
                raise BacktestError("--grid: no grid function enabled in [controller.grid]")
        bt = Backtest(site.simulator, settings, mode, load, pv, step_s=args.step, grid=grid)
    except (Refused, SeriesError, BacktestError, ValueError) as exc:
        return _refuse(str(exc))
    wall = time.perf_counter()
    trace = bt.run(seconds)
    wall = time.perf_counter() - wall
    result = {
        "mode": args.mode,
        "params": params,
        "days": args.days,
        "step_s": args.step,
        "start": datetime.fromtimestamp(load.start, UTC).isoformat()
        if load.absolute
        else load.start,
        **kpis(trace, bt.battery.cfg.capacity_wh),
        "simulated_s_per_wall_s": round(seconds / wall) if wall > 0 else None,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kpis.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if trace.write_failures:
        print(
            f"backtest: warning: {trace.write_failures} writes were not confirmed by read-back"
            f" (the controller trips on the first): {trace.first_write_failure}",
            file=sys.stderr,
        )
    if not args.no_plot:
        plot(trace, out / "backtest.png", _title(args.mode, params))
        print(f"wrote {out / 'kpis.json'} and {out / 'backtest.png'}", file=sys.stderr)
    return 0


def _title(mode: str, params: Any) -> str:
    if mode == SCHEDULE:
        names = [w.get("name", "?") for w in params.get("windows", []) if isinstance(w, dict)]
        text = f"schedule: windows {', '.join(names) or '-'}" + (
            ", and a default" if params.get("default") else ""
        )
    else:
        text = f"{mode} {json.dumps(params)}"
    return text if len(text) <= 160 else text[:157] + "..."


def plot(trace: Trace, path: Path, title: str) -> None:
    """Grid, load, PV and battery power (kW) over SoC (%), against hours from the start."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a gateway or in CI
    import matplotlib.pyplot as plt

    hours = [t / 3600.0 for t in trace.t]
    fig, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(12, 7), gridspec_kw={"height_ratios": [3, 1]}
    )
    for values, label, colour in (
        (trace.load, "load", "tab:gray"),
        (trace.pv, "PV", "tab:orange"),
        (trace.battery, "battery (+ discharge)", "tab:green"),
        (trace.grid, "grid (+ import)", "tab:blue"),
    ):
        top.plot(hours, [w / 1000.0 for w in values], label=label, color=colour, linewidth=0.8)
    top.axhline(0, color="black", linewidth=0.5)
    top.set_ylabel("kW")
    top.set_title(title, fontsize=9)
    top.legend(loc="upper right", fontsize=8)
    bottom.plot(hours, trace.soc, color="tab:purple", linewidth=0.8)
    bottom.set_ylabel("SoC %")
    bottom.set_ylim(0, 100)
    bottom.set_xlabel("hours from start")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def register(sub: Any) -> None:
    p = sub.add_parser("backtest", help="run a mode over recorded load and PV in simulated time")
    p.add_argument("-c", "--config", required=True, help="site file (TOML) with [simulator]")
    p.add_argument(
        "--mode",
        required=True,
        help="mode name, e.g. peak_shaving, or schedule (the site's [controller.schedule])",
    )
    p.add_argument("--params", help="mode parameters as JSON, e.g. '{\"target_w\": 50000}'")
    p.add_argument("--load", required=True, help="site load CSV: time,watts")
    p.add_argument("--pv", help="PV generation CSV: time,watts (optional)")
    p.add_argument("--grid", help="grid CSV: time,volts,hertz; runs [controller.grid] (optional)")
    p.add_argument("--days", type=float, default=1.0, help="simulated days (default 1)")
    p.add_argument("--step", type=float, default=1.0, help="step in seconds (default 1)")
    p.add_argument("--out", default="backtest", help="output directory (default ./backtest)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run)
