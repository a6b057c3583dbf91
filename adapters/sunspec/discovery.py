"""SunSpec discovery: find `SunS` at 40000, then 0, then 50000, and walk the (ID, L) headers
to the 0xFFFF end marker. The I/O is a `read(address, count)` coroutine passed in, so the
walk itself is testable against a register image.

The walk is tolerant, as field tools are: a model without a usable definition is skipped
over its L registers, a short or long model keeps what its definition can place, and a chain
that ends without the marker (a refused header, zeros, an impossible header, a header whose
whole body is refused) ends there with what was found. Every irregularity is returned in
`DeviceMap.notes` with its address.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.modbus.errors import REFUSED_CODES, ReadRefused
from adapters.modbus.points import decode_raw
from adapters.sunspec.layout import LayoutError, ModelLayout, build_layout, unusable

SUNS_MARKER = (0x5375, 0x6E53)
END_ID = 0xFFFF
DEFAULT_BASES = (40000, 0, 50000)
MAX_MODELS = 256
MAX_READ = 125
# Filler for a body register the device refuses during discovery (decoded as not implemented
# for most types; the poll then finds the point unreadable and publishes null).
REFUSED_FILL = 0xFFFF

Read = Callable[[int, int], Awaitable[list[int]]]


class NotSunSpec(Exception):
    """No `SunS` marker at any base address."""


@dataclass(frozen=True)
class ChainEntry:
    """One (ID, L) header found on the walk, decoded or not (`meta.chain`)."""

    model_id: int
    address: int
    length: int
    decoded: bool
    note: str | None = None  # why it was not decoded, or what was odd about it
    defined_length: int | None = None

    def meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.model_id,
            "address": self.address,
            "length": self.length,
            "decoded": self.decoded,
        }
        if self.defined_length is not None and self.defined_length != self.length:
            out["defined_length"] = self.defined_length
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class DeviceMap:
    base: int
    models: tuple[ModelLayout, ...]
    identity: dict[str, str | None]
    chain: tuple[ChainEntry, ...] = ()
    end: str = "marker"  # how the walk ended: "marker" or what stopped it
    notes: tuple[str, ...] = field(default=())  # one line per irregularity, with its address


async def read_span(read: Read, address: int, count: int, max_read: int = MAX_READ) -> list[int]:
    out: list[int] = []
    while count > 0:
        n = min(count, max_read)
        out.extend(await read(address, n))
        address += n
        count -= n
    return out


async def read_tolerant(
    read: Read, address: int, count: int, max_read: int = MAX_READ
) -> tuple[list[int], list[int]]:
    """Read a span; refused parts are halved down to single registers and filled with
    REFUSED_FILL. Returns (registers, refused addresses)."""
    try:
        return await read_span(read, address, count, max_read), []
    except ReadRefused as exc:
        if exc.code not in REFUSED_CODES:
            raise
        if count == 1:
            return [REFUSED_FILL], [address]
    half = count // 2
    a, ra = await read_tolerant(read, address, half, max_read)
    b, rb = await read_tolerant(read, address + half, count - half, max_read)
    return a + b, ra + rb


async def find_base(read: Read, bases: tuple[int, ...] = DEFAULT_BASES) -> int:
    for base in bases:
        try:
            regs = await read(base, 2)
        except ReadRefused:
            continue
        if tuple(regs[:2]) == SUNS_MARKER:
            return base
    raise NotSunSpec(f"no SunS marker at {', '.join(str(b) for b in bases)}")


def _served_prefix(start: int, length: int, refused: list[int]) -> int:
    """How many registers of [start, start+length) come before a refused run that reaches
    the end of the span (all of them when the last register was served)."""
    gone = set(refused)
    n = length
    while n > 0 and start + n - 1 in gone:
        n -= 1
    return n


async def _unreadable(read: Read, address: int) -> bool:
    """True when the device refuses the register at `address` (where a next header would be)."""
    try:
        await read(address, 1)
    except ReadRefused as exc:
        return exc.code in REFUSED_CODES
    return False


def _impossible(mid: int, length: int, addr: int) -> str | None:
    if mid == 0 and length == 0:
        return f"zeros at {addr} instead of the end marker"
    if mid == 0:
        return f"model id 0 at {addr}"
    if addr + 2 + length > 0x10000:
        return f"model {mid} at {addr}: L={length} runs past the last register"
    return None


async def discover(
    read: Read, bases: tuple[int, ...] = DEFAULT_BASES, max_read: int = MAX_READ
) -> DeviceMap:
    """Scan the device and lay out every model. Timeouts and connection errors propagate."""
    base = await find_base(read, bases)
    addr = base + 2
    models: list[ModelLayout] = []
    chain: list[ChainEntry] = []
    notes: list[str] = []
    seen: dict[int, int] = {}
    identity: dict[str, str | None] = {}
    end = f"no end marker after {MAX_MODELS} models"
    for _ in range(MAX_MODELS):
        try:
            header = await read(addr, 2)
        except ReadRefused as exc:
            end = f"exception {exc.code} at {addr} instead of the end marker"
            break
        mid, length = header[0], header[1]
        if mid == END_ID:
            end = "marker"
            break
        bad = _impossible(mid, length, addr)
        if bad is not None:
            end = bad
            break
        skip = unusable(mid)
        if skip is not None:  # not read at all: vendor areas often refuse reads
            chain.append(ChainEntry(mid, addr, length, False, skip))
            notes.append(f"model {mid} at {addr} (L={length}): {skip}, skipped")
            addr += length + 2
            continue
        body, refused = await read_tolerant(read, addr + 2, length, max_read)
        served = _served_prefix(addr + 2, length, refused)
        cut: str | None = None
        if served < length and await _unreadable(read, addr + 2 + length):
            # The device ends inside this model: its L claims registers nobody serves.
            if served == 0:
                end = f"model {mid} at {addr}: none of its L={length} registers can be read"
                break
            cut = (
                f"model {mid} at {addr}: the device ends after {served} of its "
                f"L={length} registers"
            )
            length, body = served, body[:served]
            refused = [a for a in refused if a < addr + 2 + served]
        if refused:
            notes.append(
                f"model {mid} at {addr}: registers {_ranges(refused)} refused during discovery"
            )
        regs = header + body
        try:
            layout = build_layout(mid, addr, length, regs, instance=seen.get(mid, 0) + 1)
        except LayoutError as exc:
            chain.append(ChainEntry(mid, addr, length, False, str(exc)))
            notes.append(f"model {mid} at {addr} (L={length}): {exc}, skipped")
        else:
            seen[mid] = layout.instance
            models.append(layout)
            note = _length_note(layout)
            if note:
                notes.append(f"model {mid} at {addr}: {note}")
            chain.append(ChainEntry(mid, addr, length, True, note, layout.defined_length))
            if mid == 1 and layout.instance == 1:
                identity = _identity(layout, regs)
        if cut is not None:
            end = cut
            break
        addr += length + 2
    if end != "marker":
        notes.append(f"chain ends at {addr}: {end}; keeping {len(models)} models")
    return DeviceMap(base, tuple(models), identity, tuple(chain), end, tuple(notes))


def _length_note(layout: ModelLayout) -> str | None:
    if layout.missing:
        return (
            f"L={layout.length} is shorter than the definition ({layout.defined_length}):"
            f" {len(layout.missing)} points beyond L are null"
        )
    if layout.length > layout.defined_length:
        return (
            f"L={layout.length} is longer than the definition ({layout.defined_length}):"
            f" the last {layout.length - layout.defined_length} registers are ignored"
        )
    return None


def _ranges(addrs: list[int]) -> str:
    out: list[str] = []
    for a in sorted(addrs):
        if out and out[-1].endswith(f"-{a - 1}"):
            out[-1] = out[-1].rsplit("-", 1)[0] + f"-{a}"
        elif out and out[-1] == str(a - 1):
            out[-1] = f"{a - 1}-{a}"
        else:
            out.append(str(a))
    return ", ".join(out)


def _identity(layout: ModelLayout, regs: list[int]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for spec in layout.points:
        if spec.name in ("Mn", "Md", "SN", "Vr"):
            o = spec.address - layout.address
            v = decode_raw(spec, regs[o : o + spec.length])
            out[spec.name] = v if isinstance(v, str) else None
    return out
