"""Shared fixtures. `broker` is a real Mosquitto (see tests/broker.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker import Broker, make_broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = make_broker(tmp_path / "mosquitto")
    try:
        yield b
    finally:
        b.cleanup()


@pytest.fixture
def probe_factory(broker: Broker) -> Iterator[object]:
    """`probe_factory("bess/#")` makes Probe objects on the test broker; all closed at the end."""
    from tests.mqtt_probe import Probe

    made: list[Probe] = []

    def make(*filters: str) -> Probe:
        p = Probe(broker.host, broker.port, *filters)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()
