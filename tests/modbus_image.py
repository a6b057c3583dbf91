"""A small pymodbus TCP server that serves a register image (loopback, free port), with the
irregularities real devices show: registers refused from the start or only after a while,
requests refused when they span a boundary, and busy answers (exception 6).

Not the project's simulator: no physics, no SunSpec knowledge, just registers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice


@dataclass
class Faults:
    refused: set[int] = field(default_factory=set)  # exception 2 for any read touching these
    refused_after: dict[int, float] = field(default_factory=dict)  # address -> from t (s)
    spans: list[tuple[int, int]] = field(default_factory=list)  # refuse reads covering a and b
    busy_every: int = 0  # every n-th read is answered exception 6 (0: never)
    busy_all: bool = False  # every read is answered exception 6


class ImageServer:
    """`await ImageServer(image).start()`; `port` then holds the bound port."""

    def __init__(
        self,
        image: dict[int, int],
        faults: Faults | None = None,
        clock: Callable[[], float] = time.monotonic,
        unit_id: int = 1,
    ) -> None:
        self.image = dict(image)
        self.faults = faults or Faults()
        self.clock = clock
        self.unit_id = unit_id
        self.port = 0
        self.reads: list[tuple[int, int]] = []
        self.answered: list[tuple[int, int]] = []
        self._t0 = clock()
        self._server: ModbusTcpServer | None = None

    async def start(self) -> ImageServer:
        lo, hi = min(self.image), max(self.image)
        values = [self.image.get(a, 0) for a in range(lo, hi + 1)]
        dev = SimDevice(
            id=self.unit_id,
            simdata=[SimData(lo, values=values, datatype=DataType.REGISTERS)],
            action=self._action,
        )
        server = ModbusTcpServer(dev, address=("127.0.0.1", 0))
        await server.serve_forever(background=True)
        transport: Any = server.transport
        self.port = int(transport.sockets[0].getsockname()[1])
        self._server = server
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    def elapsed(self) -> float:
        return self.clock() - self._t0

    def refuses(self, address: int, count: int) -> ExcCodes | None:
        f = self.faults
        span = range(address, address + count)
        if any(a not in self.image for a in span):
            return ExcCodes.ILLEGAL_ADDRESS  # a gap in the image (e.g. after a cut chain)
        if any(a in f.refused for a in span):
            return ExcCodes.ILLEGAL_ADDRESS
        t = self.elapsed()
        if any(a in span and t >= at for a, at in f.refused_after.items()):
            return ExcCodes.ILLEGAL_ADDRESS
        if any(a in span and b in span for a, b in f.spans):
            return ExcCodes.ILLEGAL_VALUE
        return None

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # the corpus is read-only
        self.reads.append((address, count))
        f = self.faults
        if f.busy_all or (f.busy_every and len(self.reads) % f.busy_every == 0):
            return ExcCodes.DEVICE_BUSY
        err = self.refuses(address, count)
        if err is None:
            self.answered.append((address, count))
        return err
