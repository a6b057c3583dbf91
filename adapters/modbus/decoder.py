"""Registers of one poll -> engineering values, each point with the scale factor read in the
same request, or else in the same poll. Pure; keeps the last scale factors it saw."""

from __future__ import annotations

from adapters.modbus.plan import ReadBlock
from adapters.modbus.points import (
    PointSpec,
    Value,
    decode_bytes,
    decode_raw,
    engineering,
    regs_to_bytes,
)

SF_LIMIT = 10  # SunSpec scale factors are -10..10; anything else is not implemented

Reads = list[tuple[ReadBlock, list[int]]]


class Decoder:
    def __init__(self) -> None:
        self.specs: dict[str, PointSpec] = {}
        self.sf_values: dict[str, int | None] = {}

    def sf(self, key: str, block: ReadBlock, regs: list[int]) -> int | None:
        """The scale factor `key`: from this block when it covers it, else the last seen."""
        sf_spec = self.specs.get(key)
        if sf_spec is None:
            return None
        if block.start <= sf_spec.address and sf_spec.end <= block.end:
            o = sf_spec.address - block.start
            raw = decode_raw(sf_spec, regs[o : o + sf_spec.length])
            sf = raw if isinstance(raw, int) and abs(raw) <= SF_LIMIT else None
            self.sf_values[key] = sf
            return sf
        return self.sf_values.get(key)

    def decode_all(self, reads: Reads) -> dict[str, Value]:
        """Scale factors first, so a point whose SF sits in another request of the same
        poll is decoded with that poll's SF."""
        for block, regs in reads:
            for p in block.points:
                if p.is_sf:
                    self.sf(p.key, block, regs)
        out: dict[str, Value] = {}
        for block, regs in reads:
            out.update(self.decode(block, regs))
        return out

    def decode(self, block: ReadBlock, regs: list[int]) -> dict[str, Value]:
        out: dict[str, Value] = {}
        data = regs_to_bytes(regs)
        start = block.start
        sfs: dict[str, int | None] = {}  # each scale factor decoded once per block
        for p in block.points:
            o = 2 * (p.address - start)
            raw = decode_bytes(p, data[o : o + 2 * p.length])
            sf = None
            if p.sf_key is not None:
                if p.sf_key in sfs:
                    sf = sfs[p.sf_key]
                else:
                    sf = sfs[p.sf_key] = self.sf(p.sf_key, block, regs)
            out[p.key] = engineering(p, raw, sf)
        return out
