"""Modes plug in through entry points (group `bess_edge.modes`), as services do.

A site adds its own mode by registering `name = "pkg.module:MyMode"` under
`[project.entry-points."bess_edge.modes"]`; `load_mode` validates its parameters with the
mode's schema and refuses bad ones with the key and the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from marshmallow import Schema, ValidationError

from edge.controller.errors import Refused, short
from edge.controller.modes.base import Mode

MODE_GROUP = "bess_edge.modes"
# Messages of type errors (as opposed to range errors) start like this.
_TYPE_ERRORS = (
    "expected",
    "Not a valid",
    "Unknown field",
    "Missing",
    "Invalid",
    "Field may not",
    "must be a finite",
)


@cache
def _modes() -> dict[str, type[Mode]]:
    found: dict[str, type[Mode]] = {}
    for ep in entry_points(group=MODE_GROUP):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Mode)):
            raise TypeError(f"entry point {MODE_GROUP}:{ep.name} is not a Mode subclass")
        found[ep.name] = cls
    return found


def mode_names() -> list[str]:
    """Every registered mode, sorted."""
    return sorted(_modes())


def mode_class(name: Any) -> type[Mode]:
    """The class of mode `name`, or Refused naming the known ones."""
    if not isinstance(name, str):
        raise Refused("invalid_payload", f"mode: expected a string, got {type(name).__name__}")
    cls = _modes().get(name)
    if cls is None:
        raise Refused(
            "out_of_range",
            f"mode: unknown mode {short(name)} (expected one of {', '.join(mode_names())})",
        )
    return cls


@cache
def params_schema(cls: type[Mode]) -> Schema:
    """One schema instance per mode class: building a marshmallow schema costs more than the
    load or dump itself, and commands do one of each."""
    return cls.params_schema()


def validate_params(name: str, params: Any) -> dict[str, Any]:
    """Validated (defaults filled in) parameters of mode `name`; Refused names `params.<key>`."""
    cls = mode_class(name)
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise Refused("invalid_payload", f"params: expected an object, got {type(params).__name__}")
    try:
        loaded = params_schema(cls).load(dict(params))
    except ValidationError as exc:
        key, msg = _first_error(exc.messages)
        code = "invalid_payload" if msg.startswith(_TYPE_ERRORS) else "out_of_range"
        raise Refused(code, f"params.{key}: {msg} (mode {name})") from None
    return dict(loaded)


def load_mode(name: Any, params: Any) -> Mode:
    """A ready mode: `name` must be registered, `params` must pass its schema."""
    checked = validate_params(name, params)
    return mode_class(name)(checked)


def _first_error(messages: Any, prefix: str = "") -> tuple[str, str]:
    """The first (key, message) of a marshmallow error dict, keys sorted, nested keys dotted."""
    if isinstance(messages, Mapping):
        for key in sorted(messages, key=str):
            sub = messages[key]
            if key == "_schema":
                return _first_error(sub, prefix.rstrip(".") or "_schema")
            return _first_error(sub, f"{prefix}{key}.")
    if isinstance(messages, list) and messages:
        return _first_error(messages[0], prefix)
    return prefix.rstrip(".") or "_schema", str(messages)
