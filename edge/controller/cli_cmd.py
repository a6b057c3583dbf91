"""`bess-edge cmd <command> [args]`: send one controller command, print the reply.

    bess-edge cmd charge 20000 -c site.toml        # {"power_w": 20000}
    bess-edge cmd discharge 5000 0.95              # {"power_w": 5000, "pf": 0.95}
    bess-edge cmd recover_soc power_w=2000         # key=value pairs, values parsed as JSON
    bess-edge cmd mode mode=peak_shaving 'params={"target_w": 50000}'

Exit status: 0 accepted, 1 refused, 3 no reply in time (2 is a configuration error).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

from edge.config import load_site
from edge.mqtt import jsonutil
from edge.mqtt.client import MqttClient
from edge.mqtt.rpc import Requester
from edge.mqtt.topics import CONTROLLER_COMMANDS, Topics

EXIT_REFUSED = 1
EXIT_TIMEOUT = 3


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "cmd",
        help="send one command to the controller and print its reply",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("command", choices=CONTROLLER_COMMANDS)
    p.add_argument(
        "args", nargs="*", help="POWER [PF] for charge/discharge/recover_soc, or key=value"
    )
    p.add_argument(
        "-c", "--config", help="site file (TOML); default: the demo site (run/demo/site.toml)"
    )
    p.add_argument("-t", "--timeout", type=float, default=5.0, help="seconds to wait for the reply")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run)


def build_body(command: str, args: list[str], power_key: str = "power_w") -> dict[str, Any]:
    """Positional numbers become power (and pf); `key=value` pairs are taken as JSON values."""
    body: dict[str, Any] = {}
    positional: list[str] = []
    for a in args:
        if "=" in a:
            key, _, raw = a.partition("=")
            try:
                body[key] = json.loads(raw)
            except json.JSONDecodeError:
                body[key] = raw
        else:
            positional.append(a)
    names = [power_key, "pf"] if command in ("charge", "discharge", "recover_soc") else []
    if len(positional) > len(names):
        raise SystemExit(f"cmd {command}: too many arguments: {' '.join(positional)}")
    for name, raw in zip(names, positional, strict=False):
        try:
            body[name] = float(raw) if "." in raw or "e" in raw.lower() else int(raw)
        except ValueError:
            raise SystemExit(f"cmd {command}: {name} must be a number, got {raw!r}") from None
    return body


async def send(
    site_id: str, broker: Any, command: str, body: dict[str, Any], timeout: float
) -> dict[str, Any]:
    topics = Topics(site_id)
    client = MqttClient(broker, f"cmd-{uuid.uuid4().hex[:8]}")
    requester = Requester(client, topics)
    await client.start(timeout=timeout)
    try:
        return await requester.request(topics.controller_cmd(command), body, timeout=timeout)
    finally:
        await client.stop()


def _default_site() -> Path:
    """The demo site `bess-edge demo` renders (run/demo/site.toml), rendered if missing."""
    from edge.cli import DEMO_WORKDIR
    from edge.demo import render_demo_site

    rendered = DEMO_WORKDIR / "site.toml"
    return rendered if rendered.exists() else render_demo_site(DEMO_WORKDIR)


def run(args: argparse.Namespace) -> int:
    if not args.verbose:  # the reply on stdout is the output; connection chatter is noise
        logging.getLogger("edge.mqtt").setLevel(logging.ERROR)
    site = load_site(args.config or _default_site())
    mode = getattr(site.controller, "user_command_mode", "POWER")
    body = build_body(args.command, args.args, "current_a" if mode == "CURRENT" else "power_w")
    try:
        reply = asyncio.run(send(site.site, site.broker, args.command, body, args.timeout))
    except TimeoutError:
        print(
            f"no reply from the controller of site {site.site!r} within {args.timeout:g} s",
            file=sys.stderr,
        )
        return EXIT_TIMEOUT
    print(jsonutil.dumps(reply))
    return 0 if reply.get("ok") is True else EXIT_REFUSED
