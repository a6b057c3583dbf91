"""A DNP3 master from another code base than the outstation's: nfm-dnp3 (import `dnp3py`).

The outstation is built on `dnp3py` from PyPI (import `dnp3`); this master is a separate,
independently written pure-Python implementation (PyPI `nfm-dnp3`). Its calls block, so
async tests run them with `asyncio.to_thread`. Control replies are read from the echoed
object's status octet, the same way nfm-dnp3's own check does, to see *which* status came
back rather than only "failed".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from dnp3py.core.config import AppLayerFunction, DNP3Config, IINFlags, QualifierCode
from dnp3py.core.master import DNP3Master, PollResult
from dnp3py.layers.application import ObjectHeader
from dnp3py.objects.analog import AnalogOutputCommand
from dnp3py.objects.binary import BinaryOutputCommand
from dnp3py.objects.groups import ObjectGroup, get_object_size

logging.getLogger("dnp3py").setLevel(logging.CRITICAL)

# Controls go out with qualifier 0x17 (1-octet count, 1-octet index prefix). nfm-dnp3 names
# 0x28 "8-bit count with 16-bit index", but IEEE 1815 defines 0x28 with a 2-octet count, so
# its own direct_operate_* requests are malformed and the outstation answers IIN2.2.
QUALIFIER = QualifierCode.UINT8_COUNT_UINT8_INDEX

# IEEE 1815 command status names (Table 4-5), by code, as the master reports them.
STATUS = {
    0: "SUCCESS", 1: "TIMEOUT", 2: "NO_SELECT", 3: "FORMAT_ERROR", 4: "NOT_SUPPORTED",
    5: "ALREADY_ACTIVE", 6: "HARDWARE_ERROR", 7: "LOCAL", 8: "TOO_MANY_OBJS",
    9: "NOT_AUTHORIZED", 10: "AUTOMATION_INHIBIT", 11: "PROCESSING_LIMITED",
    12: "OUT_OF_RANGE", 13: "DOWNSTREAM_LOCAL", 14: "ALREADY_COMPLETE", 15: "BLOCKED",
    16: "CANCELLED", 17: "BLOCKED_OTHER_MASTER", 18: "DOWNSTREAM_FAIL",
}  # fmt: skip


@dataclass
class Poll:
    ok: bool
    iin: IINFlags | None
    binary: dict[int, bool]
    analog: dict[int, float]
    binary_events: list[tuple[int, bool, int | None]]  # (index, value, ms since epoch)
    analog_events: list[tuple[int, float, int | None]]


class Master:
    def __init__(
        self, port: int, master_address: int = 1, outstation_address: int = 10, timeout: float = 6.0
    ) -> None:
        self.m = DNP3Master(
            DNP3Config(
                host="127.0.0.1",
                port=port,
                master_address=master_address,
                outstation_address=outstation_address,
                response_timeout=timeout,
                connection_timeout=3.0,
                log_level="CRITICAL",
                confirm_required=False,  # unconfirmed user data, as DNP3 over TCP usually is
            )
        )

    def __enter__(self) -> Master:
        self.m.open()
        return self

    def __exit__(self, *_: Any) -> None:
        self.m.close()

    # -- reads ---------------------------------------------------------------------------
    def integrity(self) -> Poll:
        return _poll(self.m.integrity_poll(), static=True)

    def events(self, cls: int) -> Poll:
        return _poll(self.m.read_class(cls), static=False)

    def all_events(self) -> Poll:
        polls = [self.events(c) for c in (1, 2, 3)]
        out = polls[0]
        for p in polls[1:]:
            out.binary_events += p.binary_events
            out.analog_events += p.analog_events
        return out

    def clear_restart(self) -> None:
        """WRITE g80v1 index 7 = 0 (clear DEVICE_RESTART), as a master does after a restart."""
        hdr = ObjectHeader(group=80, variation=1, qualifier=0x00, range_start=7, range_stop=7,
                           data=b"\x00")  # fmt: skip
        self.m._send_request(self.m._application.build_request(AppLayerFunction.WRITE, [hdr]))

    # -- controls: return the status name the outstation answered ------------------------
    def crob(self, index: int, on: bool, how: str = "direct") -> str:
        cmd = BinaryOutputCommand.latch_on(index) if on else BinaryOutputCommand.latch_off(index)
        hdr = ObjectHeader(
            group=ObjectGroup.CONTROL_RELAY_OUTPUT_BLOCK,
            variation=1,
            qualifier=QUALIFIER,
            count=1,
            data=bytes([index]) + cmd.to_bytes(),
        )
        return self._control(hdr, how)

    def analog_out(self, index: int, value: int, how: str = "direct") -> str:
        cmd = AnalogOutputCommand.create(index, value)
        hdr = ObjectHeader(
            group=ObjectGroup.ANALOG_OUTPUT_BLOCK,
            variation=1,
            qualifier=QUALIFIER,
            count=1,
            data=bytes([index]) + cmd.to_bytes(1),
        )
        return self._control(hdr, how)

    def _control(self, hdr: ObjectHeader, how: str) -> str:
        if how == "sbo":
            status = self._one(AppLayerFunction.SELECT, hdr)
            if status != "SUCCESS":
                return f"SELECT {status}"
            return self._one(AppLayerFunction.OPERATE, hdr)
        fn = {"direct": AppLayerFunction.DIRECT_OPERATE, "select": AppLayerFunction.SELECT,
              "operate": AppLayerFunction.OPERATE}[how]  # fmt: skip
        return self._one(fn, hdr)

    def _one(self, fn: AppLayerFunction, hdr: ObjectHeader) -> str:
        resp = self.m._send_request(self.m._application.build_request(fn, [hdr]))
        if resp is None:
            return "NO_RESPONSE"
        for obj in resp.objects:
            size = get_object_size(obj.group, obj.variation)
            if size is None:
                continue
            status = resp.raw_data[obj.data_offset + 1 + size - 1] & 0x7F
            return STATUS.get(status, str(status))
        return f"NO_OBJECT iin={resp.iin}"


def _poll(r: PollResult, static: bool) -> Poll:
    out = Poll(r.success, r.iin, {}, {}, [], [])
    for b in r.binary_inputs:
        if b.timestamp is not None or not static:
            out.binary_events.append((b.index, bool(b.value), b.timestamp))
        else:
            out.binary[b.index] = bool(b.value)
    for a in r.analog_inputs:
        if a.timestamp is not None or not static:
            out.analog_events.append((a.index, float(a.value), a.timestamp))
        else:
            out.analog[a.index] = float(a.value)
    return out
