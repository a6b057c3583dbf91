"""MQTT shell: the topic builder, the paho client wrapper and the request/response helper.

The names load on first use, so a module that needs only the topic vocabulary
(`edge.mqtt.topics`), such as the controller core, does not import paho or asyncio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.mqtt.client import BrokerSettings, Message, MqttClient, TlsSettings, Will
    from edge.mqtt.rpc import Requester, RpcError, serve
    from edge.mqtt.topics import Topics

_WHERE = {
    "BrokerSettings": "client",
    "Message": "client",
    "MqttClient": "client",
    "TlsSettings": "client",
    "Will": "client",
    "Requester": "rpc",
    "RpcError": "rpc",
    "serve": "rpc",
    "Topics": "topics",
}

__all__ = [
    "BrokerSettings",
    "Message",
    "MqttClient",
    "Requester",
    "RpcError",
    "TlsSettings",
    "Topics",
    "Will",
    "serve",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'edge.mqtt' has no attribute {name!r}")
    return getattr(importlib.import_module(f"edge.mqtt.{module}"), name)
