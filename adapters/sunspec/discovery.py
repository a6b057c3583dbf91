"""SunSpec discovery: find `SunS` at 40000, then 0, then 50000, and walk the (ID, L) headers
to the 0xFFFF end marker. The I/O is a `read(address, count)` coroutine passed in, so the
walk itself is testable against a register image.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from adapters.sunspec.layout import ModelLayout, build_layout

SUNS_MARKER = (0x5375, 0x6E53)
END_ID = 0xFFFF
DEFAULT_BASES = (40000, 0, 50000)
MAX_MODELS = 256
MAX_READ = 125

Read = Callable[[int, int], Awaitable[list[int]]]


class NotSunSpec(Exception):
    """No `SunS` marker at any base address."""


class ReadRefused(Exception):
    """The device answered a read with a Modbus exception (the address does not exist)."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message or f"Modbus exception {code}")
        self.code = code


@dataclass(frozen=True)
class DeviceMap:
    base: int
    models: tuple[ModelLayout, ...]
    identity: dict[str, str | None]


async def read_span(read: Read, address: int, count: int, max_read: int = MAX_READ) -> list[int]:
    out: list[int] = []
    while count > 0:
        n = min(count, max_read)
        out.extend(await read(address, n))
        address += n
        count -= n
    return out


async def find_base(read: Read, bases: tuple[int, ...] = DEFAULT_BASES) -> int:
    for base in bases:
        try:
            regs = await read(base, 2)
        except ReadRefused:
            continue
        if tuple(regs[:2]) == SUNS_MARKER:
            return base
    raise NotSunSpec(f"no SunS marker at {', '.join(str(b) for b in bases)}")


async def discover(
    read: Read, bases: tuple[int, ...] = DEFAULT_BASES, max_read: int = MAX_READ
) -> DeviceMap:
    """Scan the device and lay out every model. Timeouts and connection errors propagate."""
    base = await find_base(read, bases)
    addr = base + 2
    models: list[ModelLayout] = []
    seen: dict[int, int] = {}
    identity: dict[str, str | None] = {}
    for _ in range(MAX_MODELS):
        try:
            header = await read(addr, 2)
        except ReadRefused:
            break  # some devices do not serve a header after the last model
        mid, length = header[0], header[1]
        if mid == END_ID:
            break
        regs = header + await read_span(read, addr + 2, length, max_read)
        seen[mid] = seen.get(mid, 0) + 1
        layout = build_layout(mid, addr, length, regs, instance=seen[mid])
        models.append(layout)
        if mid == 1 and seen[mid] == 1:
            identity = _identity(layout, regs)
        addr += length + 2
    return DeviceMap(base, tuple(models), identity)


def _identity(layout: ModelLayout, regs: list[int]) -> dict[str, str | None]:
    from adapters.modbus.points import decode_raw

    out: dict[str, str | None] = {}
    for spec in layout.points:
        if spec.name in ("Mn", "Md", "SN", "Vr"):
            o = spec.address - layout.address
            v = decode_raw(spec, regs[o : o + spec.length])
            out[spec.name] = v if isinstance(v, str) else None
    return out
