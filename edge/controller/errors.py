"""The one refusal error type, in a leaf module so the mode layer can raise it too."""

from __future__ import annotations

from typing import Any


def short(value: Any) -> str:
    """A value for a refusal message: never thousands of digits (a fuzzed 10**4000)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**15:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Refused(Exception):
    """A refused command: `code` from topics.md, `message` names the field and the reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
