"""The independent oracle: what pysunspec2's own Modbus client reads from a device, keyed
like our topics; and what the adapter left retained on the broker."""

from __future__ import annotations

import json
from typing import Any

from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from tests.mqtt_probe import Probe

ROOT = "bess/t"


def contract_string(v: str) -> str | None:
    """topics.md: the text up to the first NUL, trailing spaces trimmed, empty is null."""
    return v.split("\0", 1)[0].rstrip(" ") or None


def pysunspec2_values(port: int) -> dict[str, Any]:
    """{topic suffix: value} as pysunspec2's own client reads the device."""
    dev = SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=port, timeout=2)
    out: dict[str, Any] = {}

    def walk(group: Any, prefix: str) -> None:
        for name, p in group.points.items():
            v = p.cvalue
            out[prefix + name] = contract_string(v) if isinstance(v, str) else v
        for gname, sub in group.groups.items():
            if isinstance(sub, list):
                for i, g in enumerate(sub, start=1):
                    walk(g, f"{prefix}{gname}/{i}/")
            else:
                walk(sub, f"{prefix}{gname}/")

    try:
        dev.scan()
        for mid, models in dev.models.items():
            if isinstance(mid, int):
                for i, m in enumerate(models, start=1):
                    walk(m, f"{mid}/" if i == 1 else f"{mid}-{i}/")
    finally:
        dev.close()
    return out


def retained(probe: Probe, device: str) -> dict[str, Any]:
    prefix = f"{ROOT}/{device}/"
    out: dict[str, Any] = {}
    for m in probe.snapshot():
        rest = m.topic[len(prefix) :]
        if (
            m.topic.startswith(prefix)
            and not rest.startswith("set/")
            and rest not in ("status", "meta", "ts")
        ):
            out[rest] = json.loads(m.payload)
    return out


def wait_online(probe: Probe, *devices: str, timeout: float = 5.0) -> None:
    for d in devices:
        probe.wait_for(f"{ROOT}/{d}/status", lambda m: m.payload == b"online", timeout=timeout)
