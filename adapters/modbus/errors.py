"""Modbus errors, the leaf vocabulary shared by the bus, SunSpec discovery and the adapter.

No imports from the project: `adapters.sunspec` and `adapters.modbus` both use these.
"""

from __future__ import annotations

# Modbus exception codes that no retry will change: function, address, value.
DEFINITIVE_CODES = frozenset({1, 2, 3})
# The device refuses these registers: split the request, then mark single points unreadable.
REFUSED_CODES = frozenset({2, 3})
# The device is busy (6) or acknowledged a long job (5): ask again shortly.
BUSY_CODES = frozenset({5, 6})


class ReadRefused(Exception):
    """The device answered a request with a Modbus exception (`code`)."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message or f"Modbus exception {code}")
        self.code = code


class DeviceTimeout(Exception):
    """No answer within the Modbus timeout (a dead or frozen device)."""


class DeviceGone(Exception):
    """No connection to the device."""


class BadAnswer(DeviceTimeout):
    """An answer that is not one to our request (wrong function code or register count).
    Handled like no answer: the connection cannot be trusted any more."""
