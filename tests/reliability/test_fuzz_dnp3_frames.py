"""Malformed DNP3 at the outstation's TCP port (issue 15): garbage bytes, broken link headers
and CRCs, and well-framed requests (built by nfm-dnp3's link layer, not the outstation's)
carrying random transport and application bytes, from the master's address and others.

Against the whole simulated site over the real broker: the outstation never crashes, still
answers a good integrity poll after every batch, and the controller's state, setpoint and
event stream do not change. Bounded: `scaled(60)` examples, each on its own connection.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import pytest
from dnp3py.layers.datalink import DataLinkLayer
from hypothesis import example, given
from hypothesis import strategies as st

from edge.mqtt.client import Message
from tests.broker import Broker
from tests.integration.controller_site import T
from tests.integration.dnp3_master import Master
from tests.integration.dnp3_site import Dnp3Site
from tests.reliability.fuzz_cases import count, live_batch_settings, report

pytestmark = [pytest.mark.broker, pytest.mark.slow]

# Function codes that act (SELECT, OPERATE, DIRECT_OPERATE[_NR], restarts): fuzzed too, but
# never with a control object (g12, g41) in front, so a random case cannot be a real order.
ACTING = {3, 4, 5, 6, 13, 14}
CONTROL_GROUPS = {12, 41}


@st.composite
def framed(draw: Any) -> bytes:
    """A frame with a valid link header and CRCs around random transport + application data."""
    source = draw(st.sampled_from([1, 1, 1, 7, 65519]))
    fc = draw(st.integers(0, 255))
    rest = draw(st.binary(max_size=200))
    if fc in ACTING and rest[:1] and rest[0] in CONTROL_GROUPS:
        rest = bytes([rest[0] ^ 0x80]) + rest[1:]
    app = bytes([draw(st.integers(0, 255)), fc]) + rest
    # mostly a single-segment fragment (FIR and FIN set), so most cases reach the application
    transport = bytes(
        [draw(st.one_of(st.integers(0, 63).map(lambda q: 0xC0 | q), st.integers(0, 255)))]
    )
    dest = draw(st.sampled_from([10, 10, 10, 11, 0]))
    link = DataLinkLayer(master_address=1, outstation_address=10)
    frame = link.build_frame(
        transport + app, destination=dest, source=source, confirmed=draw(st.booleans()), fcv=False
    )
    return bytes(frame)


def _frame(source: int, app: bytes) -> bytes:
    link = DataLinkLayer(master_address=1, outstation_address=10)
    return bytes(link.build_frame(b"\xc0" + app, destination=10, source=source, confirmed=False))


# Always run as well: a garbage READ from the master (reaches the application layer) and a
# well-formed integrity poll from a stranger (address check).
KNOWN = [_frame(1, b"\xc0\x01\xff\xff\xff"), _frame(7, b"\xc0\x01\x3c\x01\x06")]


@st.composite
def broken_header(draw: Any) -> bytes:
    """0x05 0x64 and then anything: wrong lengths, controls, CRCs."""
    return b"\x05\x64" + draw(st.binary(min_size=1, max_size=300))


frames = st.lists(
    st.one_of(st.binary(min_size=1, max_size=300), broken_header(), framed()),
    min_size=1,
    max_size=4,
)


def _send(port: int, chunks: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        for c in chunks:
            sock.sendall(c)
        sock.settimeout(0.05)
        try:
            while sock.recv(4096):
                pass
        except (TimeoutError, OSError):
            pass


def test_malformed_frames_change_nothing(broker: Broker) -> None:
    async def main() -> None:
        async with Dnp3Site(broker, time_scale=1.0) as s:
            site = s.site
            assert (await site.cmd("start"))["ok"]
            await site.wait_state("holding", 10)
            assert (await site.cmd("charge", {"power_w": 3000}))["ok"]
            before = {k: site.ctl.snapshot()[k] for k in ("state", "setpoint", "faults")}
            events: list[dict[str, Any]] = []
            site.client.subscribe(T.controller_events, lambda m: events.append(_j(m)), qos=1)
            await asyncio.sleep(0.3)
            events.clear()

            @live_batch_settings(60)
            @given(batch=frames)
            @example(batch=KNOWN)
            def fuzz(batch: list[bytes]) -> None:
                _send(s.port, batch)
                count("dnp3_frames", len(batch))
                assert s.svc.os._thread is not None and s.svc.os._thread.is_alive()

            started = time.monotonic()
            await asyncio.to_thread(fuzz)
            assert time.monotonic() - started < 90
            # the cases reached the application layer, and the address check
            assert s.svc.watch.last_seen is not None
            assert s.svc.os.outstation.rejected_frames > 0

            def good_poll() -> Any:
                with Master(s.port) as m:
                    return m.integrity()

            poll = await asyncio.to_thread(good_poll)
            assert poll.ok and poll.binary[9] is True  # still serving: charging
            after = {k: site.ctl.snapshot()[k] for k in ("state", "setpoint", "faults")}
            assert after == before
            assert [e for e in events if e.get("kind") in ("transition", "refused")] == []
            assert site.value("inverter", 704, "WSet") == -3000
            report(__name__)

    asyncio.run(asyncio.wait_for(main(), 150))


def _j(msg: Message) -> dict[str, Any]:
    body = json.loads(msg.payload)
    return body if isinstance(body, dict) else {}
