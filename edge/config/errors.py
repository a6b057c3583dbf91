"""Config errors that name the file, the key path and the reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class ConfigError(Exception):
    """A site file that cannot be used. `problems` is a list of (key path, reason)."""

    def __init__(self, path: str, problems: list[tuple[str, str]]) -> None:
        self.path = path
        self.problems = problems
        lines = [f"{path}: {key or '<top>'}: {reason}" for key, reason in problems]
        super().__init__("\n".join(lines))


def flatten_messages(messages: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Turn marshmallow's nested error dict into ("a.b.c", "reason") pairs."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key == "_schema":
                yield from flatten_messages(value, prefix)
                continue
            sub = f"{prefix}.{key}" if prefix else str(key)
            yield from flatten_messages(value, sub)
    elif isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            for m in messages:
                yield prefix, m
        else:
            for m in messages:
                yield from flatten_messages(m, prefix)
    else:
        yield prefix, str(messages)
