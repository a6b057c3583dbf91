"""Irregular devices: each irregularity of real devices has its own image, built from a
corpus image (tests/sunspec_corpus.py) by one edit, and its own expected outcome: online,
which points are null, what `meta` says, one WARNING naming the address.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from adapters.sunspec.layout import build_layout
from tests.integration.image_harness import ImageSite
from tests.integration.sunspec_oracle import ROOT, retained, wait_online
from tests.modbus_image import Faults
from tests.mqtt_probe import Probe
from tests.sunspec_corpus import WELL_FORMED, cut_chain, headers, insert_model, set_length

pytestmark = pytest.mark.broker

FAST = {"poll_s": 0.1, "refused_retry_min_s": 0.3, "refused_retry_max_s": 0.6}


def inverter(n: int = 1) -> dict[int, int]:
    """pysunspec's test inverter 1 (models 1, 103) or 2 (1, 103, 160)."""
    image: dict[int, int] = WELL_FORMED[f"pysunspec-inverter-{n}"]()
    return image


def address(image: dict[int, int], key: str) -> int:
    """Where a point of the image lives, from pysunspec2's definitions."""
    model = int(key.split("/")[0])
    mid, addr, length = next(h for h in headers(image) if h[0] == model)
    regs = [image[a] for a in range(addr, addr + 2 + length)]
    return next(p.address for p in build_layout(mid, addr, length, regs).points if p.key == key)


def settle(probe: Probe, device: str, want: dict[str, Any], timeout: float = 5.0) -> Any:
    got: dict[str, Any] = {}
    for _ in range(int(timeout / 0.2)):
        got = retained(probe, device)
        if set(want) <= set(got):
            break
        time.sleep(0.2)
    return got


def meta(probe: Probe, device: str) -> dict[str, Any]:
    m = probe.latest(f"{ROOT}/{device}/meta")
    assert m is not None
    data: dict[str, Any] = m.json()
    return data


def statuses(probe: Probe) -> list[bytes]:
    """Every change of status since the device first came online (online, offline, ...)."""
    out: list[bytes] = []
    for m in probe.snapshot():
        seen = m.topic == f"{ROOT}/dev/status" and (out or m.payload == b"online")
        if seen and (not out or out[-1] != m.payload):
            out.append(m.payload)
    return out


def warnings_about(caplog: Any, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and text in r.getMessage()
    ]


def test_vendor_and_unknown_models_are_skipped(
    broker: Any, probe_factory: Any, caplog: Any
) -> None:
    base = inverter(1)
    at = headers(base)[1][1]  # before model 103
    vendor = [64900, 6, 1, 2, 3, 4, 5, 6]
    unknown = [4242, 3, 7, 8, 9]
    image = insert_model(insert_model(base, at, unknown), at, vendor)
    with ImageSite(broker, {"dev": (image, None)}, **FAST) as site:
        want = site.pysunspec2(base)  # the device without the two extra models
        probe = probe_factory(f"{ROOT}/dev/#")
        wait_online(probe, "dev")
        got = settle(probe, "dev", want)
        assert got == want
        m = meta(probe, "dev")
        assert m["models"] == [1, 103]
        assert m["chain"][1:4] == [
            {"id": 64900, "address": at, "length": 6, "decoded": False, "note": "vendor model"},
            {
                "id": 4242,
                "address": at + 8,
                "length": 3,
                "decoded": False,
                "note": "no definition in pysunspec2",
            },
            {"id": 103, "address": at + 13, "length": 50, "decoded": True},
        ]
        assert m["end"] == "marker"
        time.sleep(0.5)  # several polls: still one warning each
        assert len(warnings_about(caplog, f"model 64900 at {at}")) == 1
        assert len(warnings_about(caplog, f"model 4242 at {at + 8}")) == 1


def test_short_model_publishes_what_fits_and_null_for_the_rest(
    broker: Any, probe_factory: Any, caplog: Any
) -> None:
    base = inverter(2)
    image = set_length(base, 103, 40)  # 10 registers short: Evt1.. lie beyond L
    with ImageSite(broker, {"dev": (image, None)}, **FAST) as site:
        want = site.pysunspec2(base)
        probe = probe_factory(f"{ROOT}/dev/#")
        wait_online(probe, "dev")
        got = settle(probe, "dev", want)
        m = meta(probe, "dev")
        lay = site.adapters["dev"].specs
        beyond = {k for k in want if k.startswith("103/") and k not in lay}
        assert beyond and set(m["missing"]) == beyond
        assert "103/W" not in beyond and "103/Evt2" in beyond and "103/Evt1" not in beyond
        assert {k: got[k] for k in beyond} == {k: None for k in beyond}
        # Everything that fits, and the next model (moved by 10 registers), as pysunspec2 reads
        # the well-formed device; only the device's own header differs.
        want["103/L"] = 40
        assert {k: got[k] for k in want if k not in beyond} == {
            k: v for k, v in want.items() if k not in beyond
        }
        entry = m["chain"][1]
        assert (entry["id"], entry["length"], entry["defined_length"]) == (103, 40, 50)
        assert "shorter" in entry["note"] and m["models"] == [1, 103, 160]
        assert len(warnings_about(caplog, "L=40 is shorter")) == 1


def test_long_model_ignores_its_tail(broker: Any, probe_factory: Any) -> None:
    base = inverter(2)
    image = set_length(base, 103, 60)  # 10 registers of 0x1234 after the defined end
    with ImageSite(broker, {"dev": (image, None)}, **FAST) as site:
        want = site.pysunspec2(base)
        probe = probe_factory(f"{ROOT}/dev/#")
        wait_online(probe, "dev")
        got = settle(probe, "dev", want)
        want["103/L"] = 60  # the only value that differs: the device's own header
        assert got == want
        m = meta(probe, "dev")
        assert m["chain"][1]["defined_length"] == 50 and "ignored" in m["chain"][1]["note"]
        assert m["missing"] == [] and m["models"] == [1, 103, 160]


@pytest.mark.parametrize(
    ("tail", "end"),
    [
        (None, "exception 2 at"),  # nothing there: the header read is refused
        ([0, 0], "zeros at"),
        ([0, 77], "model id 0 at"),
        ([4242, 0xFFF0], "runs past the last register"),
    ],
)
def test_chain_without_end_marker_keeps_what_was_found(
    broker: Any, probe_factory: Any, caplog: Any, tail: list[int] | None, end: str
) -> None:
    base = inverter(2)
    at = headers(base)[2][1]  # where model 160 starts: the chain ends there instead
    image = cut_chain(base, at, tail)
    with ImageSite(broker, {"dev": (image, None)}, **FAST) as site:
        want = {k: v for k, v in site.pysunspec2(base).items() if not k.startswith("160/")}
        probe = probe_factory(f"{ROOT}/dev/#")
        wait_online(probe, "dev")
        assert settle(probe, "dev", want) == want
        m = meta(probe, "dev")
        assert m["models"] == [1, 103] and end in m["end"] and str(at) in m["end"]
        assert len(warnings_about(caplog, f"chain ends at {at}")) == 1


def test_register_refused_from_the_start_is_null_and_unreadable(
    broker: Any, probe_factory: Any, caplog: Any
) -> None:
    image = inverter(1)
    w = address(image, "103/W")
    with ImageSite(broker, {"dev": (image, Faults(refused={w}))}, **FAST) as site:
        want = site.pysunspec2(image)
        probe = probe_factory(f"{ROOT}/dev/#")
        wait_online(probe, "dev")
        got = settle(probe, "dev", want)
        assert got["103/W"] is None
        assert {k: v for k, v in got.items() if k != "103/W"} == {
            k: v for k, v in want.items() if k != "103/W"
        }
        m = meta(probe, "dev")
        assert list(m["unreadable"]) == ["103/W"] and m["unreadable"]["103/W"]["modbus_code"] == 2
        # It stays online at its poll rate, and the refused point is retried rarely, alone.
        server = site.servers["dev"]
        n0, t0 = len(server.reads), time.monotonic()
        time.sleep(1.0)
        polls = site.adapters["dev"].polls
        retries = [r for r in server.reads[n0:] if r == (w, 1)]
        assert 1 <= len(retries) <= 3  # backoff 0.3 s, doubling to 0.6 s
        assert len(server.reads[n0:]) - len(retries) >= 5 * (time.monotonic() - t0) / 1.0
        assert polls >= 5
        assert statuses(probe) == [b"online"]
        assert len(warnings_about(caplog, f"103/W at {w} refused")) == 1


def test_register_refused_after_a_while_then_readable_again(
    broker: Any, probe_factory: Any
) -> None:
    image = inverter(1)
    w = address(image, "103/W")
    faults = Faults(refused_after={w: 1.0})
    with ImageSite(broker, {"dev": (image, faults)}, **FAST) as site:
        want = site.pysunspec2(image)
        probe = probe_factory(f"{ROOT}/dev/#")
        wait_online(probe, "dev")
        assert settle(probe, "dev", want)["103/W"] == want["103/W"] == 2970
        probe.wait_for(f"{ROOT}/dev/103/W", lambda m: m.json() is None, timeout=3)
        got = retained(probe, "dev")
        assert {k: v for k, v in got.items() if k != "103/W"} == {
            k: v for k, v in want.items() if k != "103/W"
        }
        assert list(meta(probe, "dev")["unreadable"]) == ["103/W"]
        ts0 = probe.wait_for(f"{ROOT}/dev/ts").json()
        probe.wait_for(f"{ROOT}/dev/ts", lambda m: m.json() > ts0 + 0.5, timeout=3)
        # The device serves it again: the next retry brings the value back.
        probe.clear()
        site.do(faults.refused_after.clear)
        probe.wait_for(f"{ROOT}/dev/103/W", lambda m: m.json() == 2970, timeout=3)
        probe.wait_for(f"{ROOT}/dev/meta", lambda m: m.json()["unreadable"] == {}, timeout=2)
        assert statuses(probe) in ([], [b"online"])


def test_refused_block_is_split_and_every_point_read(broker: Any, probe_factory: Any) -> None:
    image = inverter(2)
    # The device refuses (exception 3) any request that covers both 103/A and 103/W.
    faults = Faults(spans=[(address(image, "103/A"), address(image, "103/W"))])
    with ImageSite(broker, {"dev": (image, faults)}, **FAST) as site:
        want = site.pysunspec2(image)
        probe = probe_factory(f"{ROOT}/dev/#")
        wait_online(probe, "dev")
        assert settle(probe, "dev", want) == want
        assert meta(probe, "dev")["unreadable"] == {}
        server = site.servers["dev"]
        n0 = len(server.reads)
        time.sleep(0.5)
        assert any(server.refuses(a, c) for a, c in server.reads[:n0])  # it was refused
        later = server.reads[n0:]
        assert later and all(server.refuses(a, c) is None for a, c in later)  # learned


def test_busy_device_is_asked_again_and_stays_online(broker: Any, probe_factory: Any) -> None:
    image = inverter(2)
    with ImageSite(broker, {"dev": (image, Faults(busy_every=2))}, **FAST) as site:
        want = site.pysunspec2(image)
        probe = probe_factory(f"{ROOT}/dev/#")
        wait_online(probe, "dev")
        assert settle(probe, "dev", want) == want
        assert meta(probe, "dev")["unreadable"] == {}
        time.sleep(0.5)
        assert statuses(probe) == [b"online"]
        assert site.adapters["dev"].polls >= 3
        server = site.servers["dev"]
        assert len(server.reads) - len(server.answered) >= len(server.reads) // 2 - 1  # busy


def test_scale_factor_out_of_range_and_string_contract(broker: Any, probe_factory: Any) -> None:
    base = inverter(1)
    image = dict(base)
    image[address(base, "103/A_SF")] = 11  # outside -10..10
    mn = address(base, "1/Mn")  # "SunSpecTest", NUL-padded: put text after the first NUL
    image[mn + 6], image[mn + 7] = 0x6A75, 0x6E6B  # bytes 12..15: "junk"
    opt = address(base, "1/Opt")
    for a in range(opt, opt + 8):
        image[a] = 0x2020  # only spaces
    with ImageSite(broker, {"dev": (image, None)}, **FAST) as site:
        want = site.pysunspec2(base)
        probe = probe_factory(f"{ROOT}/dev/#")
        wait_online(probe, "dev")
        got = settle(probe, "dev", want)
        scaled = {"103/A", "103/AphA", "103/AphB", "103/AphC"}
        assert {k: got[k] for k in scaled} == {k: None for k in scaled}
        assert got["103/A_SF"] == 11
        assert got["1/Mn"] == "SunSpecTest" and got["1/Opt"] is None
        assert want["1/Opt"] is not None  # the well-formed device has one
        same = set(want) - scaled - {"103/A_SF", "1/Opt"}
        assert {k: got[k] for k in same} == {k: want[k] for k in same}


def test_device_busy_for_good_goes_offline_within_budget(broker: Any, probe_factory: Any) -> None:
    image = inverter(1)
    faults = Faults()
    with ImageSite(broker, {"dev": (image, faults)}, offline_budget_s=0.6, **FAST) as site:
        probe = probe_factory(f"{ROOT}/dev/#")
        wait_online(probe, "dev")
        t0 = time.monotonic()
        site.do(setattr, faults, "busy_all", True)
        probe.wait_for(f"{ROOT}/dev/status", lambda m: m.payload == b"offline", timeout=2)
        assert time.monotonic() - t0 < 0.6 + 0.5  # the budget, one poll period and slack
        site.do(setattr, faults, "busy_all", False)
        probe.wait_for(f"{ROOT}/dev/status", lambda m: m.payload == b"online", timeout=5)
