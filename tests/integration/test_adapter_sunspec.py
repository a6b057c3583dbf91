"""The Modbus adapter against the simulator over TCP, with the real broker.

Every point of the battery, inverter and meter must be on its topic with the value
pysunspec2's own client reads from the same simulator.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.adapter_harness import SiteRunner
from tests.integration.sunspec_oracle import pysunspec2_values, retained, wait_online

pytestmark = pytest.mark.broker

SIM = [
    {"name": "battery", "kind": "battery", "initial_soc": 63.4},
    {"name": "inverter", "kind": "inverter"},
    {"name": "meter", "kind": "meter", "load_w": 12_345},
]
DEVICES = [{"name": n, "kind": "sunspec"} for n in ("battery", "inverter", "meter")]
ROOT = "bess/t"


def test_every_point_matches_pysunspec2(broker: Any, probe_factory: Any) -> None:
    with SiteRunner(broker, SIM, DEVICES) as site:
        probe = probe_factory(f"{ROOT}/#")
        wait_online(probe, "battery", "inverter", "meter")
        probe.close()
        # A new subscriber gets the whole retained state.
        late = probe_factory(f"{ROOT}/#")
        late.wait_for(f"{ROOT}/meter/203/W")
        for device in ("battery", "inverter", "meter"):
            want = pysunspec2_values(site.sim.port(device))
            meta = late.wait_for(f"{ROOT}/{device}/meta").json()
            deadline_points = set(want)
            got: dict[str, Any] = {}
            for _ in range(100):
                got = retained(late, device)
                if deadline_points <= set(got):
                    break
                late.wait_for(f"{ROOT}/{device}/ts", timeout=1)
            assert set(got) == set(want), set(want) ^ set(got)
            diffs = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
            assert not diffs, f"{device}: {diffs}"
            assert set(meta["points"]) == set(want)
            assert meta["kind"] == "sunspec" and meta["identity"]["SN"] == f"SIM-{device}"
            # Retained point values carry the 3 x refresh expiry.
            m = late.latest(f"{ROOT}/{device}/1/SN")
            assert m is not None and m.retain and m.properties.MessageExpiryInterval <= 30
        # Scale-factor points are there, raw; not-implemented values are null.
        assert isinstance(retained(late, "battery")["802/SoC_SF"], int)
        assert retained(late, "battery")["802/SoC"] == pytest.approx(63.4, abs=0.1)
        assert late.latest(f"{ROOT}/battery/meta").json()["points"]["802/SetOp"] == {
            "unit": None,
            "type": "enum16",
            "access": "RW",
        }
        assert any(v is None for v in retained(late, "inverter").values())


def test_scale_factor_changes_are_followed(broker: Any, probe_factory: Any) -> None:
    devices = [{"name": "battery", "kind": "sunspec", "poll_s": 0.1}]
    with SiteRunner(broker, SIM[:1], devices) as site:
        probe = probe_factory(f"{ROOT}/battery/#")
        wait_online(probe, "battery")
        before = probe.wait_for(f"{ROOT}/battery/802/SoC").json()
        sf = probe.wait_for(f"{ROOT}/battery/802/SoC_SF").json()
        site.inject("battery", "corrupt_sf", {"model": 802, "point": "SoC_SF", "value": sf + 1})
        expected = site.value("battery", 802, "SoC")
        assert expected == pytest.approx(before * 10)
        probe.wait_for(f"{ROOT}/battery/802/SoC_SF", lambda m: m.json() == sf + 1, timeout=2)
        probe.wait_for(
            f"{ROOT}/battery/802/SoC", lambda m: m.json() == pytest.approx(expected), timeout=2
        )
        # A scale factor that is not implemented makes its points null, never a raw number.
        # The simulator's corrupt_sf accepts -10..10 only, so set the sentinel in its image.
        site.do(lambda: site.sim.device("battery").image.set_raw(802, "SoC_SF", None))
        probe.wait_for(f"{ROOT}/battery/802/SoC_SF", lambda m: m.json() is None, timeout=2)
        probe.wait_for(f"{ROOT}/battery/802/SoC", lambda m: m.json() is None, timeout=2)
        probe.wait_for(f"{ROOT}/battery/802/SoCMax", lambda m: m.json() is None, timeout=2)


def test_publish_by_exception_with_periodic_full_refresh(broker: Any, probe_factory: Any) -> None:
    devices = [{"name": "battery", "kind": "sunspec", "poll_s": 0.05, "refresh_s": 1.0}]
    with SiteRunner(broker, SIM[:1], devices) as site:  # physics off: nothing changes
        probe = probe_factory(f"{ROOT}/battery/#")
        wait_online(probe, "battery")
        time.sleep(0.2)
        probe.clear()
        time.sleep(2.5)
        soc = [m for m in probe.snapshot() if m.topic == f"{ROOT}/battery/802/SoC"]
        sn = [m for m in probe.snapshot() if m.topic == f"{ROOT}/battery/1/SN"]
        # ~50 polls of an unchanged value: only the refreshes go out (every 1 s).
        assert 2 <= len(soc) <= 3, len(soc)
        assert 2 <= len(sn) <= 3, len(sn)  # nameplate: read once, still refreshed
        assert all(m.properties.MessageExpiryInterval == 3 for m in soc)
        ts = [m.json() for m in probe.snapshot() if m.topic == f"{ROOT}/battery/ts"]
        assert ts and abs(ts[-1] - time.time()) < 2
        # A change goes out at once, without waiting for the refresh.
        probe.clear()
        site.do(lambda: site.sim.set_value("battery", 802, "SoC", 77.7))
        m = probe.wait_for(f"{ROOT}/battery/802/SoC", lambda m: m.json() == 77.7, timeout=0.5)
        assert m is not None
