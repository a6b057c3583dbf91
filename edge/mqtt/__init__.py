"""MQTT shell: the topic builder, the paho client wrapper and the request/response helper."""

from edge.mqtt.client import BrokerSettings, Message, MqttClient, TlsSettings, Will
from edge.mqtt.rpc import Requester, RpcError, serve
from edge.mqtt.topics import Topics

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
