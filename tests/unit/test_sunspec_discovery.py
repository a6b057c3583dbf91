"""Discovery and model layouts against register images built with pysunspec2 itself."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sunspec2 import device as ss_device

from adapters.modbus.errors import ReadRefused
from adapters.modbus.points import bytes_to_regs, decode_raw, engineering
from adapters.sunspec.discovery import NotSunSpec, discover
from adapters.sunspec.layout import build_layout


def image(models: list[Any], base: int = 40000) -> dict[int, int]:
    regs = [0x5375, 0x6E53]
    for m in models:
        regs.extend(bytes_to_regs(m.get_mb()))
    regs.extend([0xFFFF, 0])
    return {base + i: r for i, r in enumerate(regs)}


class FakeDevice:
    """A register map; reads of missing addresses get Modbus exception 2, like a device."""

    def __init__(self, regs: dict[int, int]) -> None:
        self.regs = regs
        self.reads: list[tuple[int, int]] = []

    async def read(self, address: int, count: int) -> list[int]:
        self.reads.append((address, count))
        assert count <= 125
        if any(a not in self.regs for a in range(address, address + count)):
            raise ReadRefused(2)
        return [self.regs[a] for a in range(address, address + count)]


def common() -> Any:
    return ss_device.Model(1, data={"Mn": "Acme", "Md": "B1", "SN": "42", "Vr": "1.0", "DA": 1})


def battery(soc: int = 555, soc_sf: int = -1) -> Any:
    return ss_device.Model(
        802, data={"SoC": soc, "SoC_SF": soc_sf, "SetOp": 2, "W": -120, "W_SF": 1}
    )


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 5))


@pytest.mark.parametrize("base", [40000, 0, 50000])
def test_finds_suns_at_each_base_and_walks_models(base: int) -> None:
    dev = FakeDevice(image([common(), battery()], base))
    dmap = run(discover(dev.read))
    assert dmap.base == base
    assert [m.model_id for m in dmap.models] == [1, 802]
    assert dmap.models[0].address == base + 2
    assert dmap.models[1].address == base + 2 + 68
    assert dmap.identity == {"Mn": "Acme", "Md": "B1", "SN": "42", "Vr": "1.0"}
    # Every point of pysunspec2's definition is in the layout, at pysunspec2's offset.
    ref = ss_device.Model(802)
    layout = {p.name: p for p in dmap.models[1].points}
    assert set(layout) == set(ref.points)
    for name, p in ref.points.items():
        assert layout[name].address == dmap.models[1].address + p.offset
    assert layout["SoC"].sf_key == "802/SoC_SF"
    assert layout["SetOp"].access == "RW" and layout["SetOp"].symbols == frozenset({1, 2})


def test_not_sunspec_raises() -> None:
    with pytest.raises(NotSunSpec):
        run(discover(FakeDevice({40000 + i: 0 for i in range(4)}).read))


def test_values_decode_like_pysunspec2() -> None:
    dev = FakeDevice(image([common(), battery(soc=555, soc_sf=-1)]))
    dmap = run(discover(dev.read))
    m = dmap.models[1]
    regs = [dev.regs[a] for a in range(m.address, m.address + m.length + 2)]
    by_key = {p.key: p for p in m.points}

    def value(key: str) -> Any:
        p = by_key[key]
        raw = decode_raw(p, regs[p.address - m.address : p.end - m.address])
        sf = None
        if p.sf_key:
            s = by_key[p.sf_key]
            sf_raw = decode_raw(s, regs[s.address - m.address : s.end - m.address])
            sf = sf_raw if isinstance(sf_raw, int) else None
        return engineering(p, raw, sf)

    assert value("802/SoC") == pytest.approx(55.5)
    assert value("802/W") == -1200
    assert value("802/SoC_SF") == -1
    assert value("802/AHRtg") is None  # not set: not-implemented sentinel -> null


def test_second_instance_of_a_model_gets_a_suffix() -> None:
    dev = FakeDevice(image([common(), battery(), battery(soc=100)]))
    dmap = run(discover(dev.read))
    assert [m.key for m in dmap.models] == ["1", "802", "802-2"]
    assert any(p.key == "802-2/SoC" and p.sf_key == "802-2/SoC_SF" for p in dmap.models[2].points)


def test_repeating_groups_get_an_index_and_counts_follow_the_device() -> None:
    mppt = ss_device.Model(
        160, data={"N": 2, "module": [{"ID": 1, "DCA": 10}, {"ID": 2, "DCA": 20}]}
    )
    string = ss_device.Model(804, data={"NMod": 2, "lithium_ion_string_module": [{}, {}]})
    dev = FakeDevice(image([common(), mppt, string]))
    dmap = run(discover(dev.read))
    keys = {p.key for m in dmap.models for p in m.points}
    assert {"160/module/1/DCA", "160/module/2/DCA"} <= keys
    assert "160/module/3/DCA" not in keys
    assert "804/lithium_ion_string_module/2/ModSoC" in keys
    dca = next(p for p in dmap.models[1].points if p.key == "160/module/2/DCA")
    assert dca.sf_key == "160/DCA_SF"  # the SF lives at the model's top level


def test_nested_non_repeating_group_has_group_name_only() -> None:
    regs = bytes_to_regs(ss_device.Model(704).get_mb())
    layout = build_layout(704, 40002, regs[1], regs)
    pf = next(p for p in layout.points if p.key == "704/PFWInj/PF")
    assert pf.sf_key == "704/PF_SF" and pf.access == "RW"


def test_legacy_model_1_with_65_registers() -> None:
    m = ss_device.Model(1, model_len=65, data={"Mn": "Old"})
    regs = bytes_to_regs(m.get_mb())
    regs[1] = 65
    layout = build_layout(1, 40002, 65, regs[:67])
    assert "Pad" not in {p.name for p in layout.points}
    assert layout.points[-1].end <= 40002 + 67


def test_reads_are_at_most_125_registers() -> None:
    dev = FakeDevice(image([common(), ss_device.Model(701), ss_device.Model(203)]))
    run(discover(dev.read))
    assert max(c for _, c in dev.reads) <= 125


def test_vendor_and_unknown_models_are_skipped_without_reading_them() -> None:
    regs = image([common(), battery()])
    # Between model 1 and 802: a vendor model and an unknown one whose bodies refuse reads.
    at = 40002 + 68
    shifted = {a + (a >= at) * 14: v for a, v in regs.items()}
    shifted.update({at: 64900, at + 1: 6, at + 8: 4242, at + 9: 4})
    dev = FakeDevice(shifted)  # the bodies (at+2.., at+10..) are absent: exception 2
    dmap = run(discover(dev.read))
    assert [m.model_id for m in dmap.models] == [1, 802]
    assert [(c.model_id, c.decoded, c.note) for c in dmap.chain] == [
        (1, True, None),
        (64900, False, "vendor model"),
        (4242, False, "no definition in pysunspec2"),
        (802, True, None),
    ]
    assert not any(at + 2 <= a < at + 8 or at + 10 <= a < at + 14 for a, _ in dev.reads)
    assert dmap.end == "marker"
    assert any(f"model 64900 at {at}" in n for n in dmap.notes)


def test_a_header_whose_whole_body_is_refused_ends_the_chain() -> None:
    """A model header pointing at registers the device does not serve is where the chain
    stops, not a model whose every point would be an unreadable null forever."""
    regs = image([common()])
    end = max(regs)  # the end marker's L register; replace the marker by a dangling header
    regs[end - 1], regs[end] = 802, 40
    dmap = run(discover(FakeDevice(regs).read))
    assert [m.model_id for m in dmap.models] == [1]
    assert "none of its L=40 registers can be read" in dmap.end


def test_a_model_running_off_the_end_of_the_device_keeps_what_is_served() -> None:
    regs = image([common(), battery()])
    first_802 = next(
        m.address for m in run(discover(FakeDevice(regs).read)).models if m.model_id == 802
    )
    last = max(regs)
    for a in range(first_802 + 2 + 20, last + 1):  # the device ends 20 registers into 802
        del regs[a]
    dmap = run(discover(FakeDevice(regs).read))
    assert [m.model_id for m in dmap.models] == [1, 802]
    bat = dmap.models[1]
    assert bat.length == 20 and all(p.end <= first_802 + 22 for p in bat.points)
    assert bat.missing  # the rest of 802 is published as null
    assert "the device ends after 20 of its" in dmap.end


def test_body_refused_during_discovery_is_read_around() -> None:
    regs = image([common(), battery(soc=321)])
    w = next(
        p.address
        for m in run(discover(FakeDevice(regs).read)).models
        for p in m.points
        if p.key == "802/W"
    )
    del regs[w]
    dmap = run(discover(FakeDevice(regs).read))
    assert [m.model_id for m in dmap.models] == [1, 802]
    assert any(f"registers {w} refused" in n for n in dmap.notes)
