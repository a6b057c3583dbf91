"""The pymodbus shell for one device: connect (TCP or RTU), TCP_NODELAY, reads and writes
with errors turned into three exceptions, and a priority lock so writes go ahead of polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.framer import FramerType

from adapters.modbus.config import DeviceConfig
from adapters.modbus.errors import BUSY_CODES, BadAnswer, DeviceGone, DeviceTimeout, ReadRefused

log = logging.getLogger(__name__)

WRITE = 0  # priorities: lower goes first
POLL = 1
BUSY_MIN_S = 0.01  # first wait after a busy answer; doubles


def build_client(cfg: DeviceConfig) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
    """The pymodbus client for a device. Automatic reconnection is off: the adapter owns it,
    so it can re-read scale factors and publish `offline` with its own capped backoff."""
    if cfg.transport == "rtu":
        assert cfg.serial is not None
        s = cfg.serial
        return AsyncModbusSerialClient(
            s.port,
            framer=FramerType.RTU,
            baudrate=s.baudrate,
            bytesize=s.bytesize,
            parity=s.parity,
            stopbits=s.stopbits,
            timeout=cfg.timeout_s,
            retries=cfg.retries,
            reconnect_delay=0,
        )
    return AsyncModbusTcpClient(
        cfg.host,
        port=cfg.port,
        timeout=cfg.timeout_s,
        retries=cfg.retries,
        reconnect_delay=0,
    )


def set_nodelay(client: Any) -> bool:
    """pymodbus does not set TCP_NODELAY; without it every request waits for Nagle."""
    transport = getattr(getattr(client, "ctx", None), "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        return False
    return True


class PriorityLock:
    """A lock whose waiters are served by priority (then arrival): writes before polls."""

    def __init__(self) -> None:
        self._locked = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    @property
    def locked(self) -> bool:
        return self._locked

    async def acquire(self, priority: int) -> None:
        if not self._locked and not self._waiters:
            self._locked = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (priority, next(self._seq), fut)
        heapq.heappush(self._waiters, entry)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # handed over just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
                    heapq.heapify(self._waiters)
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)  # ownership passes directly; _locked stays True
                return
        self._locked = False

    @contextlib.asynccontextmanager
    async def hold(self, priority: int) -> AsyncIterator[None]:
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()


class ModbusBus:
    """One device's connection. Every request goes through `lock` (see PriorityLock)."""

    def __init__(self, cfg: DeviceConfig) -> None:
        self.cfg = cfg
        self.lock = PriorityLock()
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self.requests = 0

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def connect(self) -> None:
        self.close()
        client = build_client(self.cfg)
        try:
            ok = await asyncio.wait_for(client.connect(), self.cfg.timeout_s * 4 + 0.5)
        except (TimeoutError, OSError) as exc:
            client.close()
            raise DeviceGone(f"cannot connect: {exc}") from None
        if not ok:
            client.close()
            where = self.cfg.serial.port if self.cfg.serial else f"{self.cfg.host}:{self.cfg.port}"
            raise DeviceGone(f"cannot connect to {where}")
        if self.cfg.transport == "tcp":
            set_nodelay(client)
        self._client = client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _live(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        c = self._client
        if c is None or not c.connected:
            raise DeviceGone("not connected")
        return c

    async def read(self, address: int, count: int) -> list[int]:
        """Holding registers. Raises ReadRefused (Modbus exception), DeviceTimeout, DeviceGone.

        A busy device (exception 6, or 5 acknowledge) is asked again with backoff for up to
        `offline_budget_s`; still busy after that counts as no answer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.offline_budget_s
        for attempt in itertools.count():
            try:
                return await self._read(address, count)
            except ReadRefused as exc:
                if exc.code not in BUSY_CODES:
                    raise
                delay = min(BUSY_MIN_S * 2**attempt, deadline - loop.time())
                if delay <= 0:
                    raise DeviceTimeout(
                        f"read {address}+{count}: still busy (exception {exc.code}) after"
                        f" {self.cfg.offline_budget_s:g} s"
                    ) from None
                log.debug("read %s+%s: busy (exception %s), asking again", address, count, exc.code)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _read(self, address: int, count: int) -> list[int]:
        c = self._live()
        self.requests += 1
        try:
            rr = await c.read_holding_registers(address, count=count, device_id=self.cfg.unit_id)
        except ConnectionException as exc:
            raise DeviceGone(str(exc)) from None
        except ModbusException as exc:  # pymodbus reports "no response" as ModbusIOException
            raise DeviceTimeout(f"read {address}+{count}: {exc}") from None
        if rr.isError():
            raise ReadRefused(
                int(getattr(rr, "exception_code", 0)), f"read {address}+{count}: {rr}"
            )
        fc = getattr(rr, "function_code", 3)
        if fc != 3:
            raise BadAnswer(f"read {address}+{count}: answer has function code {fc}, not 3")
        regs = list(rr.registers)
        if len(regs) != count:
            raise BadAnswer(f"read {address}+{count}: answer has {len(regs)} registers")
        return regs

    async def write(self, address: int, values: list[int]) -> None:
        """Write holding registers (function 16). Raises ReadRefused with the exception code."""
        c = self._live()
        self.requests += 1
        try:
            rr = await c.write_registers(address, values, device_id=self.cfg.unit_id)
        except ConnectionException as exc:
            raise DeviceGone(str(exc)) from None
        except ModbusException as exc:
            raise DeviceTimeout(f"write {address}: {exc}") from None
        if rr.isError():
            raise ReadRefused(int(getattr(rr, "exception_code", 0)), f"write {address}: {rr}")
