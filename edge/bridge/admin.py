"""`{root}/bridge/admin/{op}`: what a utility's operator does to the 2030.5 server. No I/O.

Register or remove a device (out-of-band registration), grant or revoke a certificate's access,
empty a device's mirror usage points, create a DERProgram, and change pollRate / postRate at
run time. Each op validates its whole body before it changes anything; refusals are
ControlError with a topics.md error code and a message naming the field.
"""

from __future__ import annotations

from typing import Any

from edge.bridge.config import POLL_RESOURCES, POST_RESOURCES
from edge.bridge.controls import ControlError
from edge.bridge.identity import LFDI_RE, sfdi_from_lfdi
from edge.bridge.state import Device, Server
from edge.mqtt.topics import check_device_name


def _lfdi(body: dict[str, Any]) -> str:
    raw = body.get("lfdi")
    if not isinstance(raw, str) or not LFDI_RE.match(raw.strip().lower()):
        raise ControlError("invalid_payload", "lfdi: expected 40 hexadecimal digits")
    return raw.strip().lower()


def _only(body: dict[str, Any], *allowed: str) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ControlError("invalid_payload", f"{unknown[0]}: unknown field ({', '.join(allowed)})")


def _device(server: Server, body: dict[str, Any]) -> Device:
    lfdi = _lfdi(body)
    dev = server.by_lfdi.get(lfdi)
    if dev is None:
        raise ControlError("unknown_point", f"lfdi: {lfdi} is not registered")
    return dev


def _int(body: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ControlError("out_of_range", f"{key}: expected an integer {lo}..{hi}")
    return v


def edev(server: Server, body: dict[str, Any], now: int) -> dict[str, Any]:
    """`{"lfdi", "registered": bool, "pin"?, "name"?, "aggregator"?}`: register (idempotent)
    or remove; `aggregator` is the LFDI of the aggregator certificate that manages it."""
    _only(body, "lfdi", "registered", "pin", "name", "aggregator")
    agg = body.get("aggregator")
    if agg is not None and (not isinstance(agg, str) or agg.lower() not in server.aggregators):
        raise ControlError("invalid_payload", "aggregator: not a configured aggregator's LFDI")
    lfdi = _lfdi(body)
    registered = body.get("registered")
    if not isinstance(registered, bool):
        raise ControlError("invalid_payload", "registered: expected true or false")
    pin = _int(body, "pin", 0, 99999999)
    dev = server.by_lfdi.get(lfdi)
    if not registered:
        if dev is not None:
            remove(server, dev)
        return {"registered": False, "lfdi": lfdi}
    if dev is None:
        sfdi = sfdi_from_lfdi(lfdi)
        name = body.get("name") or f"edev-{sfdi}"
        try:
            check_device_name(name)
        except ValueError as exc:
            raise ControlError("invalid_payload", f"name: {exc}") from None
        if any(d.name == name or d.sfdi == sfdi for d in server.devices.values()):
            raise ControlError("out_of_range", f"name/sFDI of {lfdi} already used by a device")
        dev = server.add_device(name, lfdi, sfdi, pin, now, server.cfg.legacy_xml)
        dev.aggregator = agg.lower() if agg else None
        server.announce(dev)
    elif "pin" in body:
        dev.pin = pin
    return {"registered": True, "lfdi": lfdi, "name": dev.name, "href": dev.base}


def remove(server: Server, dev: Device) -> None:
    """Forget a device and everything it owns (its usage points, their mRIDs)."""
    del server.devices[dev.eid]
    del server.by_lfdi[dev.lfdi]
    _clear_mups(server, dev)
    server.sink.device_removed(dev)


def _clear_mups(server: Server, dev: Device) -> int:
    gone = [k for k, u in server.mups.items() if u.owner == dev.eid]
    for k in gone:
        del server.mups[k]
    for mrid in [m for m, owner in server.mrid_owner.items() if owner == dev.eid]:
        del server.mrid_owner[mrid]
    return len(gone)


def mup_clear(server: Server, body: dict[str, Any], now: int) -> dict[str, Any]:
    _only(body, "lfdi")
    return {"removed": _clear_mups(server, _device(server, body))}


def access(server: Server, body: dict[str, Any], now: int) -> dict[str, Any]:
    """`{"lfdi", "granted": bool}`: a revoked certificate gets 403 for everything."""
    _only(body, "lfdi", "granted")
    lfdi = _lfdi(body)
    granted = body.get("granted")
    if not isinstance(granted, bool):
        raise ControlError("invalid_payload", "granted: expected true or false")
    (server.denied.discard if granted else server.denied.add)(lfdi)
    return {"lfdi": lfdi, "granted": granted}


def program(server: Server, body: dict[str, Any], now: int) -> dict[str, Any]:
    """`{"lfdi", "primacy", "fsa"?}`: make sure the device has a DERProgram of that primacy,
    grouped in FunctionSetAssignments `fsa` (default 1)."""
    _only(body, "lfdi", "primacy", "fsa")
    dev = _device(server, body)
    p = _int(body, "primacy", 0, 255)
    if p is None:
        raise ControlError("invalid_payload", "primacy: required")
    k = _int(body, "fsa", 1, 16)
    dev.programs.add(p)
    if k is not None and k != 1:
        dev.fsa_of[p] = k
    elif k == 1:
        dev.fsa_of.pop(p, None)
    return {"href": f"{dev.base}/derp/{p}", "fsa": f"{dev.base}/fsa/{k or dev.fsa_of.get(p, 1)}"}


def rates(server: Server, body: dict[str, Any], now: int) -> dict[str, Any]:
    """`{"resource", "poll_rate_s" | "post_rate_s"}`: change a rate until the bridge restarts."""
    _only(body, "resource", "poll_rate_s", "post_rate_s")
    res = str(body.get("resource"))
    poll = _int(body, "poll_rate_s", 1, 86400 * 7)
    post = _int(body, "post_rate_s", 1, 86400 * 7)
    if (poll is None) == (post is None):
        raise ControlError("invalid_payload", "give exactly one of poll_rate_s, post_rate_s")
    allowed = POLL_RESOURCES if poll is not None else POST_RESOURCES
    if res not in allowed:
        raise ControlError("invalid_payload", f"resource: one of {', '.join(allowed)}")
    if poll is not None:
        server.poll_rates[res] = poll
    else:
        assert post is not None
        server.post_rates[res] = post
    return {"resource": res, "poll_rate_s": poll, "post_rate_s": post}


def stats(server: Server, body: dict[str, Any], now: int) -> dict[str, Any]:
    """Counters: notifications sent / retried / failed / dropped / superseded and pending (also
    those the core queued and the service has not handed over yet), subscriptions, devices."""
    _only(body)
    notes = dict(server.notify_stats)
    notes["pending"] = notes.get("pending", 0) + len(server.outbox)
    return {"notifications": notes, "subscriptions": len(server.subscriptions),
            "devices": len(server.devices)}  # fmt: skip


OPS = {
    "stats": stats,
    "edev": edev,
    "mup-clear": mup_clear,
    "access": access,
    "program": program,
    "rates": rates,
}
