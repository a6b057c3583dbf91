"""The dnp3py side: database from the point map, the control handler, the TCP runner.

What this adds to the library, and why:
- the master address is checked on every request: a frame from another source address is
  dropped and counted (the library's runner only checks the destination);
- events carry their time: binary events as g2v2 and analog events as g32v3 (the library
  sends g2v1/g32v1, without time, although it records the time of each event);
- with `[dnp3] unsolicited = false` a master's ENABLE/DISABLE_UNSOLICITED is answered
  IIN2.0 (function not supported), as the standard asks of an outstation without them;
- with `unsolicited = true` the runner sends them (the library builds them but its TCP
  runner never sends), retried up to the configured count while unconfirmed;
- the runner counts connections, so the state topic can say whether a master is connected.
Everything runs on the outstation's own thread and event loop (`OutstationThread`): the
library calls control handlers synchronously, and a handler waits for the controller's reply
over MQTT, which the main loop delivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dnp3.application.builder import build_null_response
from dnp3.application.fragment import ObjectBlock, ResponseFragment
from dnp3.application.qualifiers import ObjectHeader
from dnp3.core.enums import ControlCode, FunctionCode, OperationType, TripCloseCode
from dnp3.core.flags import IIN
from dnp3.core.timestamp import DNP3Timestamp
from dnp3.database import (
    AnalogInputConfig,
    AnalogOutputConfig,
    BinaryInputConfig,
    BinaryOutputConfig,
    Database,
    DatabaseConfig,
    EventClass,
)
from dnp3.database.event_buffer import EventBufferConfig
from dnp3.datalink.builder import build_unconfirmed_user_data
from dnp3.objects.analog_input import AnalogInputEvent32
from dnp3.objects.binary_input import BinaryInputEvent
from dnp3.outstation import (
    CommandResult,
    DefaultCommandHandler,
    Outstation,
    OutstationConfig,
    OutstationTcpRunner,
    PeerId,
    UnsolicitedConfig,
)
from dnp3.transport.segmenter import Segmenter

from edge.dnp3.config import Dnp3Config
from edge.dnp3.pointmap import PointMap

log = logging.getLogger(__name__)

BINARY_EVENT_TIME = (2, 2)  # g2v2: binary input event with absolute time
ANALOG_EVENT_TIME = (32, 3)  # g32v3: 32-bit analog input event with absolute time
START_TIMEOUT_S = 5.0
UNSOLICITED_PERIOD_S = 0.05
UNSOLICITED_FCS = (FunctionCode.ENABLE_UNSOLICITED, FunctionCode.DISABLE_UNSOLICITED)

# (kind "binary"/"analog", index, value, how "select"/"operate"/"direct") -> result
Executor = Callable[[str, int, Any, str], CommandResult]


def build_database(pm: PointMap, event_buffer: int) -> Database:
    """One DNP3 point per map entry; `event_buffer` events at most per class, oldest dropped."""
    n = max(len(pm.binary_inputs), len(pm.analog_inputs), 1) + 1
    db = Database(
        config=DatabaseConfig(
            max_binary_inputs=n,
            max_analog_inputs=n,
            max_binary_outputs=len(pm.binary_outputs) + 1,
            max_analog_outputs=len(pm.analog_outputs) + 1,
            max_counters=1,
            max_frozen_counters=1,
            event_buffer_config=EventBufferConfig(
                max_binary_events=event_buffer, max_analog_events=0, max_counter_events=0
            ),
        )
    )
    for bi in pm.binary_inputs:
        db.add_binary_input(bi.index, BinaryInputConfig(event_class=EventClass(bi.event_class)))
    for ai in pm.analog_inputs:
        db.add_analog_input(
            ai.index,
            AnalogInputConfig(event_class=EventClass(ai.event_class), deadband=ai.deadband),
        )
    for bo in pm.binary_outputs:
        db.add_binary_output(bo.index, BinaryOutputConfig(event_class=EventClass.NONE))
    for ao in pm.analog_outputs:
        db.add_analog_output(ao.index, AnalogOutputConfig(event_class=EventClass.NONE))
    return db


def crob_on(code: ControlCode) -> bool | None:
    """True for close/latch-on/pulse-on, False for trip/latch-off/pulse-off, else None."""
    if code.clear or code.queue:
        return None
    if code.tcc == TripCloseCode.CLOSE:
        return True
    if code.tcc == TripCloseCode.TRIP:
        return False
    if code.tcc != TripCloseCode.NUL:
        return None
    return {
        OperationType.LATCH_ON: True,
        OperationType.PULSE_ON: True,
        OperationType.LATCH_OFF: False,
        OperationType.PULSE_OFF: False,
    }.get(code.op_type)


class ControlHandler(DefaultCommandHandler):
    """Every SELECT/OPERATE/DIRECT_OPERATE goes to the executor; it never raises."""

    def __init__(self, execute: Executor) -> None:
        self.execute = execute

    def _run(self, kind: str, index: int, value: Any, how: str) -> CommandResult:
        try:
            return self.execute(kind, index, value, how)
        except Exception as exc:  # the library must get a result, never an exception
            log.exception("DNP3 control %s %s[%d] failed", how, kind, index)
            return CommandResult.hardware_error(f"{type(exc).__name__}: {exc}")

    def select_binary_output(
        self, index: int, code: ControlCode, count: int, on_time: int, off_time: int
    ) -> CommandResult:
        return self._run("binary", index, crob_on(code), "select")

    def operate_binary_output(
        self,
        index: int,
        code: ControlCode,
        count: int,
        on_time: int,
        off_time: int,
        select_sequence: int,
    ) -> CommandResult:
        return self._run("binary", index, crob_on(code), "operate")

    def direct_operate_binary_output(
        self, index: int, code: ControlCode, count: int, on_time: int, off_time: int
    ) -> CommandResult:
        return self._run("binary", index, crob_on(code), "direct")

    def select_analog_output(self, index: int, value: float) -> CommandResult:
        return self._run("analog", index, value, "select")

    def operate_analog_output(
        self, index: int, value: float, select_sequence: int
    ) -> CommandResult:
        return self._run("analog", index, value, "operate")

    def direct_operate_analog_output(self, index: int, value: float) -> CommandResult:
        return self._run("analog", index, value, "direct")


@dataclass
class BessOutstation(Outstation):
    """The library's outstation, with the master address checked and timed events."""

    on_request: Callable[[], None] = lambda: None
    rejected_frames: int = 0

    def process_request(self, data: bytes, *, peer: PeerId | None = None) -> list[ResponseFragment]:
        if peer is None or peer.source != self.config.master_address:
            self.rejected_frames += 1
            return []
        self.on_request()
        if not self.config.unsolicited.enabled and len(data) >= 2 and data[1] in UNSOLICITED_FCS:
            return [build_null_response(iin=self.iin | IIN.NO_FUNC_CODE_SUPPORT, seq=data[0] & 15)]
        return super().process_request(data, peer=peer)

    def _build_binary_event_blocks(self, events: list[Any]) -> list[ObjectBlock]:
        def encode(e: Any) -> bytes:
            return BinaryInputEvent(quality=e.quality, state=e.value).to_bytes() + _time(e)

        return self._timed_blocks(events, BINARY_EVENT_TIME, encode)

    def _build_analog_event_blocks(self, events: list[Any]) -> list[ObjectBlock]:
        def encode(e: Any) -> bytes:
            lo, hi = AnalogInputEvent32.MIN_VALUE, AnalogInputEvent32.MAX_VALUE
            value = int(max(lo, min(hi, round(e.value))))
            return AnalogInputEvent32(quality=e.quality, value=value).to_bytes() + _time(e)

        return self._timed_blocks(events, ANALOG_EVENT_TIME, encode)

    def _timed_blocks(
        self, events: list[Any], gv: tuple[int, int], encode: Callable[[Any], bytes]
    ) -> list[ObjectBlock]:
        if not events:
            return []
        index_size, count_data, qualifier = self._event_framing(events)
        data = bytearray()
        for e in events:
            data += e.index.to_bytes(index_size, "little") + encode(e)
        header = ObjectHeader(group=gv[0], variation=gv[1], qualifier=qualifier)
        return [ObjectBlock(header=header, data=count_data + bytes(data))]


def _time(event: Any) -> bytes:
    ts = event.timestamp if event.timestamp is not None else DNP3Timestamp.now()
    return ts.to_bytes()


@dataclass
class CountingRunner(OutstationTcpRunner):
    """The library's TCP runner, counting open connections."""

    connections: int = field(default=0, init=False)
    accepted: int = field(default=0, init=False)
    unsolicited_sent: int = field(default=0, init=False)
    unsolicited_unconfirmed: int = field(default=0, init=False)

    async def _handle_connection(self, channel: Any) -> None:
        self.connections += 1
        self.accepted += 1
        sender = None
        if self.outstation.config.unsolicited.enabled:
            sender = asyncio.create_task(self._send_unsolicited(channel))
        try:
            await super()._handle_connection(channel)
        finally:
            self.connections -= 1
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender

    async def _send_unsolicited(self, channel: Any) -> None:
        """Send pending events unsolicited once the master enabled them; wait for CONFIRM.

        The library removes events from its buffer when it builds the fragment, so a fragment
        never confirmed after its retries is lost (counted in `unsolicited_unconfirmed`)."""
        cfg = self.outstation.config
        state = self.outstation._state.unsolicited  # the library keeps it private
        segmenter = Segmenter()
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(UNSOLICITED_PERIOD_S)
            fragment = self.outstation.generate_unsolicited()
            if fragment is None:
                continue
            self.unsolicited_sent += 1
            for _ in range(cfg.unsolicited.max_retries + 1):
                for seg in segmenter.segment(fragment.to_bytes()):
                    frame = build_unconfirmed_user_data(
                        destination=cfg.master_address,
                        source=cfg.address,
                        dir_from_master=False,
                        user_data=seg.to_bytes(),
                    )
                    await channel.write_all(frame.to_bytes())
                deadline = loop.time() + cfg.unsolicited.confirm_timeout
                while state.pending_confirm and loop.time() < deadline:
                    await asyncio.sleep(0.01)
                if not state.pending_confirm:
                    break
            else:
                self.unsolicited_unconfirmed += 1
                state.pending_confirm = False


class OutstationThread:
    """The outstation on its own thread and event loop. `call()` runs work there."""

    def __init__(self, cfg: Dnp3Config, execute: Executor, on_request: Callable[[], None]) -> None:
        self.cfg = cfg
        self.db = build_database(cfg.points, cfg.event_buffer)
        self.outstation = BessOutstation(
            config=OutstationConfig(
                address=cfg.outstation_address,
                master_address=cfg.master_address,
                select_timeout=cfg.select_timeout_s,
                unsolicited=UnsolicitedConfig(
                    enabled=cfg.unsolicited, confirm_timeout=2.0, max_retries=2
                ),
                time_sync_required=False,
            ),
            database=self.db,
            handler=ControlHandler(execute),
            on_request=on_request,
        )
        self.runner = CountingRunner(outstation=self.outstation, host=cfg.host, port=cfg.port)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.port: int | None = None

    def start(self) -> int:
        """Start listening; returns the bound port. Raises OSError if it cannot bind."""
        self._thread = threading.Thread(target=self._main, name="dnp3-outstation", daemon=True)
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_S):
            raise TimeoutError("DNP3 outstation did not start listening in time")
        if self._error is not None:
            raise self._error
        assert self.port is not None
        return self.port

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._error = exc
            self._started.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        task = asyncio.create_task(self.runner.run())
        while self.runner.local_address is None and not task.done():
            await asyncio.sleep(0.005)
        if task.done():
            task.result()  # raises the bind error
        assert self.runner.local_address is not None
        self.port = self.runner.local_address[1]
        self._started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def call(self, fn: Callable[[], None]) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn)

    def stop(self, timeout: float = 5.0) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(self.runner.stop(), loop).result(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
