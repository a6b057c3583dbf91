"""`bess-edge adapter`: one DeviceAdapter per `[[devices]]` table of the site file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from adapters.modbus.config import DeviceConfig
from adapters.modbus.device import DeviceAdapter
from adapters.modbus.points import PointSpec
from adapters.pointmap.reader import BUILTIN, PointMapError, builtin_path, load_pointmap
from edge.config.errors import ConfigError
from edge.config.site import SiteConfig
from edge.mqtt.topics import NAME_RE, Topics
from edge.services import Service


class AdapterService:
    """Runs one device's adapter; the name says which device."""

    def __init__(self, adapter: DeviceAdapter) -> None:
        self.adapter = adapter
        self.name = f"adapter-{adapter.name}"

    async def run(self, stop: asyncio.Event) -> None:
        await self.adapter.run(stop)


def resolve_pointmap(site: SiteConfig, index: int, cfg: DeviceConfig) -> tuple[PointSpec, ...]:
    """Load a device's CSV: a built-in profile name or a path relative to the site file."""
    assert cfg.pointmap is not None
    key = f"devices.{index}.pointmap"
    ref = cfg.pointmap
    if ref in BUILTIN:
        path = builtin_path(ref)
        default_profile = ref
    else:
        path = Path(ref)
        if not path.is_absolute() and site.path not in ("", "<memory>"):
            path = Path(site.path).parent / path
        default_profile = path.stem.lower()
    profile = cfg.profile or default_profile
    if not NAME_RE.match(profile):
        raise ConfigError(
            site.path,
            [(f"devices.{index}.profile", f"{profile!r} is not a valid topic level; set profile")],
        )
    try:
        return load_pointmap(path, profile)
    except PointMapError as exc:
        raise ConfigError(site.path, [(key, str(exc))]) from None


def make_adapters(site: SiteConfig) -> list[DeviceAdapter]:
    topics = Topics(site.site)
    out: list[DeviceAdapter] = []
    for i, cfg in enumerate(site.devices):
        pm = resolve_pointmap(site, i, cfg) if cfg.kind == "pointmap" else None
        out.append(DeviceAdapter(topics, site.broker, cfg, pm))
    return out


def make_services(site: SiteConfig) -> list[Service]:
    return [AdapterService(a) for a in make_adapters(site)]
