"""Verified writes of one device (part of DeviceAdapter): validate, apply the scale factor
inversely, write, read back and confirm. Every failure is an RpcError with topics.md's code.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

from adapters.modbus.bus import WRITE, ModbusBus
from adapters.modbus.config import DeviceConfig
from adapters.modbus.decoder import Decoder
from adapters.modbus.errors import (
    DEFINITIVE_CODES,
    BadAnswer,
    DeviceGone,
    DeviceTimeout,
    ReadRefused,
)
from adapters.modbus.plan import ReadBlock, matches
from adapters.modbus.points import (
    EncodeError,
    PointSpec,
    Value,
    decode_raw,
    encode_raw,
    engineering,
    to_raw,
)
from edge.mqtt.rpc import Request, RpcError
from edge.mqtt.topics import Topics


class WriteMixin:
    """The write half of DeviceAdapter; the attributes below are the adapter's."""

    cfg: DeviceConfig
    name: str
    topics: Topics
    specs: dict[str, PointSpec]
    online: bool
    bus: ModbusBus
    clock: Callable[[], float]
    _broken: str | None
    _last_request: float
    decoder: Decoder

    def _set_online(self, online: bool) -> None:
        raise NotImplementedError

    async def _read(self, address: int, count: int) -> list[int]:
        raise NotImplementedError

    def _publish_values(self, decoded: dict[str, Value]) -> None:
        raise NotImplementedError

    def _confirmed(
        self, spec: PointSpec, raw: Any, rb: Any, value: Any, v: Value
    ) -> tuple[bool, str]:
        """Is the read-back a confirmation of the write? (B5: 0 included, never assumed.)

        Exact match, or for configured points: a self-clearing command read back as 0, or
        a value the device moves by itself (a countdown) within its tolerance.
        """
        if same_raw(spec, raw, rb):
            return True, ""
        if rb == 0 and any(matches(spec.key, p) for p in self.cfg.self_clearing):
            return True, "self_cleared"
        tol = next(
            (t for p, t in self.cfg.readback_tolerance.items() if matches(spec.key, p)), None
        )
        if (
            tol is not None
            and isinstance(v, (int, float))
            and isinstance(value, (int, float))
            and abs(v - value) <= tol
        ):
            return True, "within_tolerance"
        return False, ""

    async def _on_set(self, request: Request) -> dict[str, Any]:
        try:
            _, model, point = self.topics.parse_set(request.topic)
        except ValueError as exc:
            raise RpcError("unknown_point", str(exc)) from None
        key = f"{model}/{point}"
        spec = self.specs.get(key)
        if spec is None:
            if not self.specs and not self.online:
                raise RpcError("offline", f"{self.name} is offline (its points are not known yet)")
            raise RpcError("unknown_point", f"{self.name} has no point {key}")
        if not spec.writable:
            raise RpcError("not_writable", f"{key} is read-only")
        if "value" not in request.body:
            raise RpcError("invalid_payload", "value: missing")
        value = request.body["value"]
        if value is None:
            raise RpcError("invalid_payload", f"value: null cannot be written to {key}")
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not (isinstance(value, str) if spec.is_string else numeric):
            want = "a string" if spec.is_string else "a number"
            raise RpcError(
                "invalid_payload", f"value: {key} needs {want}, got {type(value).__name__}"
            )
        limit = next((lim for pat, lim in self.cfg.limits.items() if matches(key, pat)), None)
        if limit is not None and not spec.is_string and not limit[0] <= value <= limit[1]:
            raise RpcError(
                "out_of_range",
                f"{key}: {value} is outside the site limits {limit[0]:g}..{limit[1]:g}",
            )
        if not self.online:
            raise RpcError("offline", f"{self.name} is offline")
        try:
            async with asyncio.timeout(self.cfg.write_budget_s):
                return await self._write(spec, value)
        except TimeoutError:
            raise RpcError(
                "timeout", f"{key}: no answer within {self.cfg.write_budget_s:g} s"
            ) from None

    async def _write(self, spec: PointSpec, value: Any) -> dict[str, Any]:
        attempts = spec.write_attempts or self.cfg.write_attempts
        wait = spec.write_wait_s if spec.write_wait_s is not None else self.cfg.write_wait_s
        sf_spec = self.specs.get(spec.sf_key) if spec.sf_key else None
        lo, hi = spec.address, spec.end
        if (
            sf_spec is not None
            and max(hi, sf_spec.end) - min(lo, sf_spec.address) <= self.cfg.max_regs
        ):
            lo, hi = min(lo, sf_spec.address), max(hi, sf_spec.end)
        block = ReadBlock(lo, hi - lo, [spec])
        last: RpcError | None = None
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(wait)
            try:
                async with self.bus.lock.hold(WRITE):
                    if self._broken or not self.online:
                        raise RpcError("offline", f"{self.name} is offline")
                    sf: int | None = None
                    if sf_spec is not None:
                        sf = self.decoder.sf(
                            sf_spec.key, block, await self._read(block.start, block.count)
                        )
                    raw = to_raw(spec, value, sf)
                    self._last_request = self.clock()
                    await self.bus.write(spec.address, encode_raw(spec, raw))
                    regs = await self._read(block.start, block.count)
                rb = decode_raw(spec, regs[spec.address - lo : spec.end - lo])
                rb_sf = self.decoder.sf(sf_spec.key, block, regs) if sf_spec is not None else None
                v = engineering(spec, rb, rb_sf)
                self._publish_values({spec.key: v})
                ok, how = self._confirmed(spec, raw, rb, value, v)
                if ok:
                    reply: dict[str, Any] = {"value": v, "raw": rb}
                    if how:
                        reply["readback"] = how
                    return reply
                last = RpcError(
                    "device_error", f"{spec.key}: read back {rb!r} after writing {raw!r}", raw=rb
                )
            except EncodeError as exc:
                raise RpcError(exc.code, str(exc)) from None
            except ReadRefused as exc:
                last = RpcError(
                    "device_error", f"{spec.key}: device refused: {exc}", modbus_code=exc.code
                )
                if exc.code in DEFINITIVE_CODES:
                    raise last from None
            except BadAnswer as exc:
                self._broken = f"bad answer: {exc}"
                self._set_online(False)  # the stream is out of step; the poll loop reconnects
                raise RpcError("device_error", f"{spec.key}: {exc}") from None
            except DeviceTimeout as exc:
                self._broken = f"write timed out: {exc}"
                self._set_online(False)  # announce now; the poll loop reconnects
                raise RpcError("timeout", f"{spec.key}: {exc}") from None
            except DeviceGone as exc:
                raise RpcError("offline", f"{self.name}: {exc}") from None
        assert last is not None
        raise last


def same_raw(spec: PointSpec, written: Any, read: Any) -> bool:
    """Compare what was written with what came back, at register resolution."""
    if spec.type == "float32" and isinstance(written, float) and isinstance(read, float):
        return struct.pack(">f", written) == struct.pack(">f", read)
    if isinstance(written, str):  # read back under the string contract (topics.md)
        return bool(read == (written.split("\0", 1)[0].rstrip(" ") or None))
    return bool(written == read)
