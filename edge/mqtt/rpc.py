"""The one request/response helper (topics.md, "Request/response").

Responders call `serve()`; requesters use `Requester.request()`. MQTT 5 ResponseTopic and
CorrelationData are used when present; MQTT 3.1.1 clients put `response_topic` and
`correlation_id` in the JSON body instead.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from edge.mqtt import jsonutil
from edge.mqtt.client import Message, MqttClient
from edge.mqtt.topics import Topics

log = logging.getLogger(__name__)

REQUEST_EXPIRY_S = 10
REPLY_EXPIRY_S = 10
DEFAULT_TIMEOUT_S = 5.0
RESERVED_KEYS = ("response_topic", "correlation_id")


class RpcError(Exception):
    """A refusal with a code from topics.md; `extra` fields are merged into the reply."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.extra = extra

    def reply(self) -> dict[str, Any]:
        return error_reply(self.code, self.message, **self.extra)


def error_reply(code: str, message: str, **extra: Any) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    top: dict[str, Any] = {}
    for k, v in extra.items():
        # Fields about the error go into `error`; fields about the responder (state) go top-level.
        (top if k == "state" else err)[k] = v
    return {"ok": False, "error": err, **top}


@dataclass(frozen=True)
class ReplyTo:
    topic: str
    correlation_data: bytes | None = None
    correlation_id: str | None = None


@dataclass(frozen=True)
class Request:
    topic: str
    body: dict[str, Any]
    reply_to: ReplyTo | None


def parse_request(msg: Message) -> tuple[Request, RpcError | None]:
    """Decode a request. Returns the request (body may be empty) and the parse error, if any.

    The reply address is recovered even when the body is bad, so the refusal reaches the sender.
    """
    reply_to: ReplyTo | None = None
    if msg.response_topic:
        reply_to = ReplyTo(msg.response_topic, msg.correlation_data)
    body: Any
    try:
        body = jsonutil.loads(msg.payload) if msg.payload.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        return Request(msg.topic, {}, reply_to), RpcError("invalid_payload", f"body: {exc}")
    if not isinstance(body, dict):
        return Request(msg.topic, {}, reply_to), RpcError(
            "invalid_payload", f"body: expected a JSON object, got {type(body).__name__}"
        )
    rt, cid = body.pop("response_topic", None), body.pop("correlation_id", None)
    if reply_to is None and isinstance(rt, str) and rt:
        reply_to = ReplyTo(rt, None, cid if isinstance(cid, str) else None)
    elif reply_to is not None and isinstance(cid, str):
        reply_to = ReplyTo(reply_to.topic, reply_to.correlation_data, cid)
    return Request(msg.topic, body, reply_to), None


def send_reply(client: MqttClient, reply_to: ReplyTo | None, body: dict[str, Any]) -> None:
    if reply_to is None:
        return
    if reply_to.correlation_id is not None:
        body = {**body, "correlation_id": reply_to.correlation_id}
    client.publish(
        reply_to.topic,
        jsonutil.dumps(body),
        qos=1,
        expiry_s=REPLY_EXPIRY_S,
        correlation_data=reply_to.correlation_data,
    )


RequestHandler = Callable[[Request], Awaitable[dict[str, Any]]]


def serve(client: MqttClient, topic_filter: str, handler: RequestHandler) -> None:
    """Answer every request on `topic_filter`. Each request gets exactly one reply.

    `handler` returns the success fields (`ok: true` is added) or raises RpcError. Any other
    exception becomes an `internal_error` reply and is logged; it never kills the responder.
    """

    async def on_message(msg: Message) -> None:
        if msg.retain:
            # A retained request is a leftover, not a command; executing it would be unsafe.
            log.warning("ignoring retained request on %s", msg.topic)
            return
        request, parse_error = parse_request(msg)
        if parse_error is not None:
            send_reply(client, request.reply_to, parse_error.reply())
            return
        try:
            result = await handler(request)
            reply = {"ok": True, **result}
        except RpcError as exc:
            reply = exc.reply()
        except Exception as exc:  # the responder must survive any request
            log.exception("request on %s failed", msg.topic)
            reply = error_reply("internal_error", f"{type(exc).__name__}: {exc}")
        try:
            send_reply(client, request.reply_to, reply)
        except ValueError as exc:  # NaN in a reply is a bug; still answer
            log.error("reply on %s not serialisable: %s", msg.topic, exc)
            send_reply(client, request.reply_to, error_reply("internal_error", str(exc)))

    client.subscribe(topic_filter, on_message, qos=1)


class Requester:
    """Send requests and await their replies, with a timeout on every wait."""

    def __init__(self, client: MqttClient, topics: Topics) -> None:
        self._client = client
        self._base = topics.reply_base(client.client_id)
        self._pending: dict[bytes, asyncio.Future[dict[str, Any]]] = {}
        self._seq = itertools.count(1)
        self._session = uuid.uuid4().hex[:8].encode()
        client.subscribe(f"{self._base}/#", self._on_reply, qos=1)

    def _on_reply(self, msg: Message) -> None:
        fut = self._pending.pop(msg.correlation_data or b"", None)
        if fut is None or fut.done():
            return
        try:
            body = jsonutil.loads(msg.payload)
        except ValueError as exc:
            body = error_reply("invalid_reply", str(exc))
        fut.set_result(
            body
            if isinstance(body, dict)
            else {"ok": False, "error": {"code": "invalid_reply", "message": "not an object"}}
        )

    async def request(
        self, topic: str, body: dict[str, Any] | None = None, timeout: float = DEFAULT_TIMEOUT_S
    ) -> dict[str, Any]:
        """Publish a request and wait for its reply. Raises TimeoutError after `timeout` s."""
        corr = self._session + b"-" + str(next(self._seq)).encode()
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[corr] = fut
        try:
            self._client.publish(
                topic,
                jsonutil.dumps(body or {}),
                qos=1,
                expiry_s=REQUEST_EXPIRY_S,
                response_topic=f"{self._base}/{corr.decode()}",
                correlation_data=corr,
            )
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(corr, None)
