"""`bess-edge inject {device} {action} [key=value ...] -c site.toml`: one fault-injection request.

Values are JSON when they parse as JSON (`bit=3`, `on=true`, `value=null`, `model=802`),
strings otherwise (`point=W_SF`). Prints the reply; exits 1 on a refusal or a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from typing import Any

from edge.config import load_site
from edge.mqtt import MqttClient, Requester, Topics

EXIT_REFUSED = 1


def parse_pairs(pairs: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{pair!r}: expected key=value")
        try:
            body[key] = json.loads(raw)
        except ValueError:
            body[key] = raw
    return body


async def _send(args: argparse.Namespace, body: dict[str, Any]) -> dict[str, Any]:
    site = load_site(args.config)
    topics = Topics(site.site)
    client = MqttClient(site.broker, client_id=f"inject-{uuid.uuid4().hex[:8]}")
    try:
        await client.start(timeout=args.timeout)
        requester = Requester(client, topics)
        await asyncio.sleep(0.05)  # let the reply subscription land before asking
        return await requester.request(
            topics.sim_cmd(args.device, args.action), body, timeout=args.timeout
        )
    finally:
        await client.stop()


def _cmd_inject(args: argparse.Namespace) -> int:
    try:
        body = parse_pairs(args.pairs)
    except ValueError as exc:
        print(f"inject: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        reply = asyncio.run(_send(args, body))
    except TimeoutError:
        print(f"inject: no reply from the simulator within {args.timeout} s", file=sys.stderr)
        return EXIT_REFUSED
    print(json.dumps(reply, indent=2))
    return 0 if reply.get("ok") is True else EXIT_REFUSED


def register(sub: Any) -> None:
    p = sub.add_parser("inject", help="send a fault-injection request to the simulator")
    p.add_argument("device", help="simulated device name, e.g. battery")
    p.add_argument(
        "action",
        help="alarm, state, inverter_fault, freeze, slow, kill, drop, corrupt_sf, stale, clear,"
        " get, load (meter) or cloud (pv)",
    )
    p.add_argument("pairs", nargs="*", metavar="key=value", help="request body fields")
    p.add_argument("-c", "--config", required=True, help="site file (TOML)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
    p.set_defaults(func=_cmd_inject)
