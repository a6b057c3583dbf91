"""The SunSpec test corpus: register images from pysunspec's and pysunspec2's test data
(tests/data/sunspec_dumps, with their licences), and the irregular variants built from them
by one documented edit each. An image is {address: register}.
"""

from __future__ import annotations

import json
import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from sunspec2 import device as ss_device

from adapters.modbus.points import bytes_to_regs

DUMPS = Path(__file__).parent / "data" / "sunspec_dumps"
SUNS = [0x5375, 0x6E53]
END = [0xFFFF, 0]
_PACK = {"u16": ">H", "s16": ">h", "u32": ">L", "s32": ">l", "u64": ">Q", "s64": ">q"}
_PACK_F = {"f32": ">f", "f64": ">d"}

Image = dict[int, int]


def mbmap(name: str) -> Image:
    """Parse a pysunspec mbmap file (the register types of its format, offsets optional)."""
    root = ET.parse(DUMPS / name).getroot()
    base = int(root.attrib.get("addr", 40000))
    data = bytearray()
    for r in root.findall("regs"):
        if r.attrib.get("offset") is not None:
            off = int(r.attrib["offset"])
            assert off * 2 >= len(data), f"{name}: overlapping regs at {off}"
            data.extend(b"\0" * (off * 2 - len(data)))
        rtype = r.attrib.get("type", "hexstr")
        text = (r.text or "").strip()
        n = int(r.attrib.get("len", 0))
        if rtype in _PACK:
            data.extend(struct.pack(_PACK[rtype], int(text or "0", 0)))
        elif rtype in _PACK_F:
            data.extend(struct.pack(_PACK_F[rtype], float(text or "0")))
        elif rtype == "string":
            n = n or (len(text) + 1) // 2
            data.extend(text.encode("latin-1")[: n * 2].ljust(n * 2, b"\0"))
        elif rtype == "hexstr":
            raw = bytes.fromhex(text.replace(" ", ""))
            data.extend(raw.ljust(n * 2, b"\0") if n else raw)
        else:
            raise ValueError(f"{name}: regs type {rtype!r}")
    return {base + i: v for i, v in enumerate(bytes_to_regs(bytes(data)))}


def json_device(name: str, base: int = 40000) -> Image:
    """A pysunspec2 test device (point values) as registers, laid out by pysunspec2 itself."""
    doc = json.loads((DUMPS / name).read_text())
    regs = list(SUNS)
    for m in doc["models"]:
        mid = int(m["ID"])
        if mid == 0xFFFF:
            break
        data = {k: v for k, v in m.items() if k not in ("ID", "L")}
        regs.extend(bytes_to_regs(ss_device.Model(mid, data=data).get_mb()))
    regs.extend(END)
    return {base + i: v for i, v in enumerate(regs)}


# Every well-formed image of the corpus.
WELL_FORMED: dict[str, Any] = {
    "pysunspec-device-1": lambda: mbmap("mbmap_test_device_1.xml"),  # 63001: every type
    "pysunspec-device-2": lambda: mbmap("mbmap_test_device_2.xml"),  # model 1 with L=65
    "pysunspec-device-3": lambda: mbmap("mbmap_test_device_3.xml"),  # 63002
    "pysunspec-inverter-1": lambda: mbmap("mbmap_test_inverter_1.xml"),  # 1, 103
    "pysunspec-inverter-2": lambda: mbmap("mbmap_test_inverter_2.xml"),
    "pysunspec-inverter-3": lambda: mbmap("mbmap_test_inverter_3.xml"),  # 103 + 160
    "pysunspec2-device-1547": lambda: json_device("device_1547.json"),  # 1, 701..713
    "pysunspec2-inverter-123": lambda: json_device("inverter_123.json"),  # 1, 129 curves
}


def headers(image: Image, base: int = 40000) -> list[tuple[int, int, int]]:
    """(model id, address, L) of every model, walking the chain as the device declares it."""
    out = []
    addr = base + 2
    while image.get(addr, 0xFFFF) != 0xFFFF:
        mid, length = image[addr], image[addr + 1]
        out.append((mid, addr, length))
        addr += 2 + length
    return out


def insert_model(image: Image, before: int, model: list[int]) -> Image:
    """Insert registers (a whole model, header included) at `before`, shifting the rest."""
    out: Image = {a: v for a, v in image.items() if a < before}
    for i, v in enumerate(model):
        out[before + i] = v
    out.update({a + len(model): v for a, v in image.items() if a >= before})
    return out


def set_length(image: Image, model_id: int, length: int) -> Image:
    """Declare another L for a model: a shorter one loses its tail, a longer one gains
    registers (0x1234 each) after its defined end; later models move accordingly."""
    mid, addr, old = next(h for h in headers(image) if h[0] == model_id)
    end = addr + 2 + old
    body = [image[a] for a in range(addr + 2, end)]
    body = body[:length] + [0x1234] * max(0, length - old)
    rest = {a: v for a, v in image.items() if a >= end}
    out: Image = {a: v for a, v in image.items() if a < addr}
    out[addr], out[addr + 1] = mid, length
    for i, v in enumerate(body):
        out[addr + 2 + i] = v
    out.update({a - old + length: v for a, v in rest.items()})
    return out


def cut_chain(image: Image, at: int, tail: list[int] | None) -> Image:
    """End the chain at `at` with `tail` instead of the end marker (None: no registers, so a
    read there is refused)."""
    out: Image = {a: v for a, v in image.items() if a < at}
    for i, v in enumerate(tail or []):
        out[at + i] = v
    return out
