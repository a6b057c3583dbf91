"""The adapter against register images it did not generate (pysunspec's and pysunspec2's
test devices, tests/data/sunspec_dumps), each served by a small pymodbus server, over the
real broker. Every retained point must equal pysunspec2's own decoding of the same device.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.integration.image_harness import ImageSite
from tests.integration.sunspec_oracle import ROOT, pysunspec2_values, retained, wait_online
from tests.mqtt_probe import Probe
from tests.sunspec_corpus import WELL_FORMED

pytestmark = pytest.mark.broker

SF_LIMIT = 10


def wait_complete(
    probe: Probe, device: str, keys: set[str], timeout: float = 5.0
) -> dict[str, Any]:
    got: dict[str, Any] = {}
    for _ in range(int(timeout / 0.25)):
        got = retained(probe, device)
        if keys <= set(got):
            break
        probe.wait_for(f"{ROOT}/{device}/ts", timeout=0.25)
    return got


def differences(site: ImageSite, name: str, got: dict[str, Any], want: dict[str, Any]) -> Any:
    """Points where we differ from pysunspec2, apart from the contract's one deliberate
    difference: a point whose scale factor is not implemented (or outside -10..10) is null,
    where pysunspec2 returns the unscaled raw number."""
    specs = site.adapters[name].specs
    out = {}
    for key, w in want.items():
        g = got.get(key, "<missing>")
        if g == w and type(g) is type(w):
            continue
        if isinstance(g, (int, float)) and isinstance(w, (int, float)) and g == pytest.approx(w):
            continue
        sf_key = specs[key].sf_key if key in specs else None
        if g is None and sf_key is not None:
            sf = want.get(sf_key)
            if sf is None or not -SF_LIMIT <= sf <= SF_LIMIT:
                continue
        out[key] = (g, w)
    return out


def test_every_corpus_image_decodes_like_pysunspec2(broker: Any, probe_factory: Any) -> None:
    images = {name.replace("pysunspec", "ps"): (f(), None) for name, f in WELL_FORMED.items()}
    with ImageSite(broker, images) as site:
        probe = probe_factory(f"{ROOT}/#")
        wait_online(probe, *images)
        report = {}
        compared = 0
        for name in images:
            want = pysunspec2_values(site.port(name))
            got = wait_complete(probe, name, set(want))
            assert set(got) == set(want), (name, set(got) ^ set(want))
            report[name] = differences(site, name, got, want)
            compared += len(want)
            meta = probe.latest(f"{ROOT}/{name}/meta")
            assert meta is not None
            m = meta.json()
            assert m["end"] == "marker" and m["unreadable"] == {} and m["missing"] == []
            assert all(c["decoded"] for c in m["chain"]), m["chain"]
            assert set(m["points"]) == set(want)
            # Read plans: no register read twice in a poll, every point in one request.
            groups = site.adapters[name].groups
            spans = sorted((b.start, b.end) for g in groups for b in g.blocks)
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), (name, spans)
            assert sum(len(b.points) for g in groups for b in g.blocks) == len(want)
        assert report == {n: {} for n in images}
        assert compared > 1000  # every point of eight devices, 1 to 713 and test models
        # Model 1 with L=65 (pysunspec's device 2) and with L=66 (every other image).
        lengths = {n: probe.latest(f"{ROOT}/{n}/meta").json()["chain"][0]["length"] for n in images}
        assert lengths.pop("ps-device-2") == 65 and set(lengths.values()) == {66}
