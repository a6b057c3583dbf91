"""`bess-edge`: one command, with a subcommand per service plus `run`, `demo` and `check-config`.

Services (sim, adapter, controller, bridge) and one-shot commands (inject) are found through
entry points (see edge/services.py), so this module never imports `adapters`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from edge.config import ConfigError, SiteConfig, load_site
from edge.services import COMMAND_GROUP, Service, run_services, service_factory, service_names

log = logging.getLogger("bess-edge")

EXIT_CONFIG = 2
EXIT_RUNTIME = 1


DEMO_WORKDIR = Path("run/demo")


def _add_common(p: argparse.ArgumentParser, config_required: bool = True) -> None:
    p.add_argument(
        "-c",
        "--config",
        required=config_required,
        help="site file (TOML)" + ("" if config_required else "; default: the built-in demo site"),
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bess-edge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in service_names():
        p = sub.add_parser(name, help=f"run the {name} service")
        _add_common(p)
        p.set_defaults(func=_cmd_services, services=[name])
    p = sub.add_parser("run", help="run adapters, bridge and controller from one site file")
    _add_common(p)
    p.set_defaults(func=_cmd_services, services=None)
    p = sub.add_parser("demo", help="start a broker, the simulator and the whole stack")
    _add_common(p, config_required=False)
    p.add_argument("--no-broker", action="store_true", help="use a broker that is already running")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("check-config", help="validate a site file and exit")
    _add_common(p)
    p.set_defaults(func=_cmd_check)
    for ep in entry_points(group=COMMAND_GROUP):
        ep.load()(sub)
    return parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def _make_services(site: SiteConfig, names: Sequence[str]) -> list[Service]:
    services: list[Service] = []
    for name in names:
        services.extend(service_factory(name)(site))
    return services


async def _serve_until_signal(services: list[Service]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await run_services(services, stop)


def _cmd_check(args: argparse.Namespace) -> int:
    site = load_site(args.config)
    print(f"{site.path}: OK (site {site.site!r}, {len(site.devices)} device(s))")
    return 0


def _cmd_services(args: argparse.Namespace) -> int:
    site = load_site(args.config)
    names = args.services or [n for n in service_names() if n != "sim"]
    services = _make_services(site, names)
    if not services:
        print(f"{site.path}: nothing to run for {', '.join(names)}", file=sys.stderr)
        return EXIT_CONFIG
    asyncio.run(_serve_until_signal(services))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from edge.demo import render_demo_site
    from edge.mosquitto import MosquittoProcess, port_open

    site = load_site(args.config or render_demo_site(DEMO_WORKDIR))
    broker = None
    if not args.no_broker:
        if port_open(site.broker.host, site.broker.port):
            log.info(
                "a broker already listens on %s:%s; using it", site.broker.host, site.broker.port
            )
        else:
            broker = MosquittoProcess(port=site.broker.port, workdir=DEMO_WORKDIR / "mosquitto")
            broker.start()
            log.info("mosquitto started on %s:%s", broker.host, broker.port)
    print(
        f"Demo site {site.site!r} running. Watch it with:\n"
        f"  mosquitto_sub -h {site.broker.host} -p {site.broker.port} -t 'bess/#' -v\n"
        f"Command it with: bess-edge cmd start -c {site.path}\n"
        "Stop with Ctrl-C.",
        flush=True,
    )
    try:
        asyncio.run(_serve_until_signal(_make_services(site, service_names())))
    finally:
        if broker is not None:
            broker.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(getattr(args, "verbose", False))
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
