"""Malformed Modbus responses (issue 6, section 4): a tiny malicious Modbus TCP server answers
read-holding-registers with truncated, overlong, mis-addressed and garbage frames.

1. The bus (adapters/modbus/bus.py), many cases: every read returns exactly the registers the
   frame for *this* request carried, or raises one of the three device errors (ReadRefused,
   DeviceTimeout, DeviceGone) within its timeout. Never another exception, never a hang, never
   wrong values.
2. Discovery on valid frames with random register content (a device that speaks Modbus but
   serves nonsense): a map, or NotSunSpec/LayoutError/ReadRefused; nothing else.
3. A whole DeviceAdapter over a real Mosquitto against the server: when the device turns
   malicious the adapter announces `offline` within its offline budget and answers set
   requests with an error code; when it behaves again the adapter comes back `online`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
import time
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.modbus.bus import ModbusBus
from adapters.modbus.device import DeviceAdapter
from adapters.modbus.errors import DeviceGone, DeviceTimeout, ReadRefused
from adapters.simulator.physics import BATTERY_MODELS
from adapters.simulator.registers import SUNS_BASE, SunSpecImage
from adapters.sunspec.discovery import NotSunSpec, discover
from adapters.sunspec.layout import LayoutError
from edge.config import parse_site
from edge.mqtt.topics import Topics
from tests.reliability.fuzz_cases import count, report, scaled

TIMEOUT_S = 0.05
DEVICE_ERRORS = (ReadRefused, DeviceTimeout, DeviceGone)


@dataclass(frozen=True)
class Frame:
    """How to answer one request. `None` fields mean "the correct value"."""

    kind: str  # "frame" | "garbage" | "silence" | "close"
    tid_delta: int = 0
    proto: int = 0
    length_delta: int | None = 0  # None: a random length field (`length`)
    length: int = 0
    unit_delta: int = 0
    fc: int = 3
    byte_count_delta: int = 0
    data_regs_delta: int = 0  # registers more (+) or fewer (-) than asked
    truncate: int = 0  # bytes cut from the end
    trailing: bytes = b""
    garbage: bytes = b""
    seed: int = 0

    def render(self, tid: int, unit: int, count: int) -> tuple[bytes, list[int] | None]:
        """The bytes to send and the registers a reader may legitimately accept (or None)."""
        if self.kind == "garbage":
            return self.garbage, None
        if self.kind in ("silence", "close"):
            return b"", None
        rng = random.Random(self.seed)
        n = max(0, count + self.data_regs_delta)
        regs = [rng.randrange(0x10000) for _ in range(n)]
        data = b"".join(struct.pack(">H", r) for r in regs)
        byte_count = (len(data) + self.byte_count_delta) % 256
        pdu = bytes([self.fc, byte_count]) + data
        length = len(pdu) + 1 + self.length_delta if self.length_delta is not None else self.length
        head = struct.pack(
            ">HHHB",
            (tid + self.tid_delta) % 0x10000,
            self.proto,
            length % 0x10000,
            (unit + self.unit_delta) % 256,
        )
        out = head + pdu
        if self.truncate:
            out = out[: max(0, len(out) - self.truncate)]
        # pymodbus takes transaction id 0 as "any" (some gateways always answer 0): tolerated,
        # since the frame still answers the one request in flight.
        correct = (
            (tid + self.tid_delta) % 0x10000 in (tid, 0)
            and self.proto == 0
            and self.length_delta == 0
            and self.unit_delta == 0
            and self.fc == 3
            and self.byte_count_delta == 0
            and self.data_regs_delta == 0
            and self.truncate == 0
        )
        return out + self.trailing, regs if correct else None


GOOD = Frame("frame")
small = st.integers(-3, 3)
frames = st.one_of(
    st.just(GOOD),
    st.builds(
        Frame,
        kind=st.just("frame"),
        tid_delta=st.sampled_from([0, 0, 1, -1, 0x8000]),
        proto=st.sampled_from([0, 0, 0, 1, 0xFFFF]),
        length_delta=st.one_of(st.just(0), st.just(0), small, st.none()),
        length=st.integers(0, 0xFFFF),
        unit_delta=st.sampled_from([0, 0, 0, 1, 254]),
        fc=st.sampled_from([3, 3, 3, 4, 0x83, 16, 0, 255]),
        byte_count_delta=st.one_of(st.just(0), st.just(0), small, st.integers(-255, 255)),
        data_regs_delta=st.one_of(st.just(0), st.just(0), small, st.integers(-125, 125)),
        truncate=st.one_of(st.just(0), st.just(0), st.integers(1, 12)),
        trailing=st.one_of(st.just(b""), st.just(b""), st.binary(max_size=12)),
        seed=st.integers(0, 2**32),
    ),
    st.builds(Frame, kind=st.just("garbage"), garbage=st.binary(min_size=1, max_size=300)),
    st.just(Frame("silence")),
    st.just(Frame("close")),
)


class EvilServer:
    """Answers function 3 with `script` frames in turn (then GOOD); serves `image` registers
    from `base` for GOOD frames when an image is given. Other functions get an exception."""

    def __init__(
        self,
        script: list[Frame] | None = None,
        image: list[int] | None = None,
        base: int = SUNS_BASE,
    ) -> None:
        self.script = list(script or [])
        self.mode: Frame | None = None  # a fixed behaviour for every request (adapter test)
        self.image = image
        self.base = base
        self.last_regs: list[int] | None = None
        self.requests = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1)

    def _next(self) -> Frame:
        if self.mode is not None:
            return self.mode
        return self.script.pop(0) if self.script else GOOD

    def _image_regs(self, address: int, count: int) -> list[int] | None:
        if self.image is None:
            return None
        o = address - self.base
        if o < 0 or o + count > len(self.image):
            return None
        return self.image[o : o + count]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(7)
                tid, _proto, length, unit = struct.unpack(">HHHB", head)
                body = await reader.readexactly(max(0, length - 1))
                self.requests += 1
                fc = body[0] if body else 0
                if fc == 16 and self.image is not None and len(body) >= 6:
                    address, qty = struct.unpack(">HH", body[1:5])
                    values = struct.unpack(f">{qty}H", body[6 : 6 + 2 * qty])
                    o = address - self.base
                    self.image[o : o + qty] = list(values)
                    writer.write(struct.pack(">HHHBBHH", tid, 0, 6, unit, 16, address, qty))
                    await writer.drain()
                    continue
                if fc != 3 or len(body) < 5:
                    out = struct.pack(">HHHB", tid, 0, 3, unit) + bytes([fc | 0x80, 1])
                    writer.write(out)
                    await writer.drain()
                    continue
                address, count = struct.unpack(">HH", body[1:5])
                frame = self._next()
                if frame.kind == "close":
                    return
                if frame is GOOD and self.image is not None:
                    regs = self._image_regs(address, count)
                    if regs is None:
                        writer.write(struct.pack(">HHHB", tid, 0, 3, unit) + bytes([0x83, 2]))
                        await writer.drain()
                        continue
                    data = b"".join(struct.pack(">H", r) for r in regs)
                    writer.write(
                        struct.pack(">HHHB", tid, 0, len(data) + 3, unit)
                        + bytes([3, len(data)])
                        + data
                    )
                    self.last_regs = regs
                else:
                    out, self.last_regs = frame.render(tid, unit, count)
                    if out:
                        writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _device_cfg(port: int, **kw: Any) -> Any:
    site = parse_site(
        {
            "site": {"id": "t"},
            "devices": [
                {
                    "name": "evil",
                    "kind": "sunspec",
                    "port": port,
                    "timeout_s": TIMEOUT_S,
                    "retries": 0,
                    **kw,
                }
            ],
        }
    )
    return site.devices[0]


async def _reconnect(bus: ModbusBus) -> None:
    """Connect like the adapter does: a few tries with a pause (a 50 ms connect timeout can
    miss on a loaded machine; that is not what this test is about)."""
    for attempt in range(5):
        try:
            await bus.connect()
            return
        except DeviceGone:
            if attempt == 4:
                raise
            await asyncio.sleep(0.05)


@settings(
    max_examples=scaled(60),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(script=st.lists(frames, min_size=1, max_size=3), count_=st.integers(1, 125))
def test_bus_reads_malformed_frames(script: list[Frame], count_: int) -> None:
    async def main() -> None:
        server = EvilServer(script)
        await server.start()
        cfg = _device_cfg(server.port, offline_budget_s=0.2)
        bus = ModbusBus(cfg)
        # A busy answer (exception 5 or 6) is asked again for up to offline_budget_s.
        bound = cfg.offline_budget_s + cfg.timeout_s * (cfg.retries + 1) + 0.5
        try:
            await _reconnect(bus)
            for _ in range(len(script) + 1):  # the last read gets GOOD: the device recovered
                count("modbus_bus_frames")
                t0 = time.monotonic()
                try:
                    regs = await asyncio.wait_for(bus.read(100, count_), bound)
                except DEVICE_ERRORS:
                    assert time.monotonic() - t0 < bound
                    await _reconnect(bus)  # what the adapter does after a device error
                    continue
                except TimeoutError:
                    pytest.fail(f"read hung beyond {bound:.2f} s")
                assert len(regs) == count_ and all(0 <= r <= 0xFFFF for r in regs)
                assert server.last_regs is not None, "accepted a frame that was not an answer"
                assert regs == server.last_regs, "accepted wrong values"
            # after the script the device behaves: the bus reads correctly again
            regs = await asyncio.wait_for(bus.read(7, 3), bound)
            assert regs == server.last_regs
        finally:
            bus.close()
            await server.stop()

    asyncio.run(asyncio.wait_for(main(), 60))


# -- discovery on nonsense registers ------------------------------------------------------------
@settings(max_examples=scaled(80), deadline=None, database=None)
@given(
    header=st.sampled_from([[0x5375, 0x6E53], [0, 0], [0x5375, 0x6E54]]),
    models=st.lists(
        st.tuples(st.sampled_from([1, 802, 704, 0, 0xFFFF, 9999, 64001]), st.integers(0, 400)),
        max_size=4,
    ),
    tail=st.lists(st.integers(0, 0xFFFF), max_size=60),
    seed=st.integers(0, 2**32),
)
def test_discovery_on_nonsense_registers(
    header: list[int], models: list[tuple[int, int]], tail: list[int], seed: int
) -> None:
    rng = random.Random(seed)
    image = list(header)
    for mid, length in models:
        image += [mid, length] + [rng.randrange(0x10000) for _ in range(min(length, 300))]
    image += tail

    async def read(address: int, count_: int) -> list[int]:
        o = address - SUNS_BASE
        if o < 0 or o + count_ > len(image):
            raise ReadRefused(2, f"read {address}+{count_}: illegal address")
        return image[o : o + count_]

    async def main() -> None:
        try:
            dmap = await asyncio.wait_for(discover(read, (SUNS_BASE,), 125), 5)
        except (NotSunSpec, LayoutError, ReadRefused):
            return
        for m in dmap.models:  # a map it accepts lies inside what the device serves
            assert all(p.address >= SUNS_BASE and p.end <= SUNS_BASE + len(image) for p in m.points)

    count("modbus_discovery_images")
    asyncio.run(main())


# -- a whole adapter over the broker ------------------------------------------------------------
MODES = {
    "overlong": Frame("frame", data_regs_delta=3),  # a consistent frame, 3 registers too many
    "wrong_function": Frame("frame", fc=4),
    "garbage": Frame("garbage", garbage=bytes(range(7, 80))),
    "silence": Frame("silence"),
    "truncated": Frame("frame", truncate=3),
    "byte_count_lies": Frame("frame", byte_count_delta=100),
    "wrong_transaction": Frame("frame", tid_delta=1),
    "short": Frame("frame", data_regs_delta=-1),
}


def _adapter_cycle(broker: Any, probe_factory: Any, modes: list[str]) -> None:
    topics = Topics("t")
    image = list(SunSpecImage(BATTERY_MODELS).registers())
    probe = probe_factory(f"{topics.root}/evil/status")

    async def main() -> None:
        server = EvilServer(image=image)
        await server.start()
        site = parse_site(
            {
                "site": {"id": "t"},
                "broker": {"host": broker.host, "port": broker.port, "keepalive": 2},
                "devices": [
                    {
                        "name": "evil",
                        "kind": "sunspec",
                        "port": server.port,
                        "timeout_s": 0.1,
                        "retries": 0,
                        "offline_budget_s": 0.5,
                        "poll_s": 0.1,
                        "reconnect_min_s": 0.05,
                        "reconnect_max_s": 0.2,
                    }
                ],
            }
        )
        adapter = DeviceAdapter(topics, site.broker, site.devices[0])
        stop = asyncio.Event()
        task = asyncio.create_task(adapter.run(stop))
        status = f"{topics.root}/evil/status"

        async def wait_status(payload: bytes, since: int, timeout: float) -> float:
            t0 = time.monotonic()

            def seen() -> bool:
                return any(m.payload == payload for m in probe.snapshot()[since:])

            while not seen():
                assert not task.done(), f"adapter died: {task.exception()!r}"
                if time.monotonic() - t0 > timeout:
                    raise TimeoutError(f"no {payload!r} on {status} within {timeout} s")
                await asyncio.sleep(0.01)
            return time.monotonic() - t0

        try:
            await wait_status(b"online", 0, 5)
            for mode in modes:
                count("modbus_adapter_modes")
                mark = len(probe.snapshot())
                server.mode = MODES[mode]
                # detection within the offline budget (plus one poll and a timeout of slack)
                took = await wait_status(b"offline", mark, 0.5 + 0.1 + 0.1 + 1.0)
                assert adapter.online is False, mode
                reply = await asyncio.to_thread(
                    probe.request, f"{topics.root}/evil/set/802/CtrlHb", {"value": 3}, 5
                )
                assert reply["ok"] is False, (mode, reply)
                assert reply["error"]["code"] in ("offline", "timeout", "device_error"), reply
                print(f"\nmodbus mode {mode}: offline after {took:.3f} s, set -> {reply['error']}")
                mark = len(probe.snapshot())
                server.mode = None
                await wait_status(b"online", mark, 5)  # recovery without a restart
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await server.stop()

    asyncio.run(asyncio.wait_for(main(), 120))


@pytest.mark.broker
def test_adapter_treats_malformed_frames_as_device_errors(broker: Any, probe_factory: Any) -> None:
    _adapter_cycle(broker, probe_factory, list(MODES))


@pytest.mark.parametrize("mode", list(MODES))
def test_write_read_back_with_a_malformed_frame(mode: str) -> None:
    """A set request whose read-back gets a malformed frame: an error reply naming the point,
    the device announced offline (to be reconnected), no crash and no hang."""
    from edge.mqtt.rpc import Request, RpcError

    count("modbus_write_readback")
    topics = Topics("t")
    image = list(SunSpecImage(BATTERY_MODELS).registers())

    async def main() -> None:
        server = EvilServer(image=image)
        await server.start()
        cfg = _device_cfg(server.port, timeout_s=0.1, write_attempts=1, write_budget_s=1.0)
        adapter = DeviceAdapter(topics, parse_site({"site": {"id": "t"}}).broker, cfg)
        try:
            await adapter._connect()
            assert adapter.online
            server.mode = MODES[mode]  # the write (function 16) still works; reads do not
            t0 = time.monotonic()
            with pytest.raises(RpcError) as err:
                await asyncio.wait_for(
                    adapter._on_set(
                        Request(topics.set("evil", "802", "CtrlHb"), {"value": 3}, None)
                    ),
                    3,
                )
            assert time.monotonic() - t0 < cfg.write_budget_s + 0.5
            assert err.value.code in ("device_error", "timeout"), err.value
            assert "802/CtrlHb" in err.value.message, err.value
            assert adapter.online is False
            print(f"\nmodbus write+read-back, {mode}: {err.value.code}: {err.value.message}")
        finally:
            adapter.bus.close()
            await server.stop()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_zz_report_counts() -> None:
    report(__name__)
