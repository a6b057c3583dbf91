"""The route table: path patterns -> {method: handler}, from the function-set modules.

Everything a device owns lives under `/edev/{n}/...`: the dispatcher checks that prefix once
(another device's resources are 403, without saying whether they exist) and matches the rest
against the device routes. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from edge.bridge import posted
from edge.bridge.fs import dcap, der, derp, edev, mup, rsp, sub
from edge.bridge.state import Ctx, HttpError, Reply

Handler = Callable[[Ctx], Reply]
Methods = Mapping[str, Handler]
EDEV = re.compile(r"/edev/(\d+)(/.*)?")


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    methods: Methods
    registered: bool = True  # the caller must be a registered device


POSTED_METHODS: Methods = {"GET": posted.get, "PUT": posted.put, "POST": posted.put}

TOP_SPECS: list[tuple[str, Methods, bool]] = [*dcap.ROUTES, *edev.ROUTES, *mup.ROUTES, *sub.ROUTES]
TOP: tuple[Route, ...] = tuple(Route(re.compile(p), m, reg) for p, m, reg in TOP_SPECS)
DEVICE: tuple[Route, ...] = tuple(
    Route(re.compile(p), methods)
    for p, methods in (
        *edev.DEVICE_ROUTES,
        *((res.path, POSTED_METHODS) for res in posted.POSTED),
        *der.DEVICE_ROUTES,
        *derp.DEVICE_ROUTES,
        *rsp.DEVICE_ROUTES,
        *sub.DEVICE_ROUTES,
    )
)


def _find(routes: tuple[Route, ...], path: str) -> tuple[Route, tuple[str, ...]] | None:
    for r in routes:
        mt = r.pattern.fullmatch(path)
        if mt is not None:
            return r, mt.groups()
    return None


def dispatch(ctx: Ctx) -> Reply:
    """Route an authenticated request (ctx.lfdi set; ctx.dev None when not registered)."""
    found = _find(TOP, ctx.path)
    sub: str | None = None
    if found is None:
        mt = EDEV.fullmatch(ctx.path)
        if mt is None:
            raise HttpError(404)
        eid = int(mt.group(1))
        target = next((d for d in ctx.visible() if d.eid == eid), None)
        if target is None:
            raise HttpError(403, "not your EndDevice")
        ctx.dev = target
        sub = mt.group(2) or ""
        found = _find(DEVICE, sub)
        if found is None:
            raise HttpError(404)
    route, groups = found
    if route.registered and ctx.dev is None and not ctx.aggregator:
        raise HttpError(403, "device not registered")
    handler = route.methods.get(ctx.method)
    if handler is None:
        raise HttpError(405)
    ctx.groups = groups
    if sub is not None:
        ctx.path = sub  # handlers under a device see the path relative to it
    return handler(ctx)
