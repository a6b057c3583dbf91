"""Fan-out of the model's changes to every open page over Server-Sent Events.

Each period the hub takes one delta from the model, encodes it once, and hands the same bytes
to every client. A client's queue is short; a client that cannot keep up loses its queue and
gets a fresh snapshot instead, so a slow or stalled page never grows the server's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from edge.view.model import SiteModel

QUEUE_MAX = 16


def sse(body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


class Client:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_MAX)


class Hub:
    def __init__(self, model: SiteModel, period_s: float) -> None:
        self.model = model
        self.period_s = period_s
        self.clients: set[Client] = set()
        self.pushes = 0

    def connect(self) -> tuple[Client, bytes]:
        client = Client()
        self.clients.add(client)
        return client, sse(self.model.snapshot())

    def disconnect(self, client: Client) -> None:
        self.clients.discard(client)

    def push_now(self) -> None:
        delta = self.model.take_delta()
        if delta is None:
            return
        self.pushes += 1
        data = sse(delta)
        snapshot: bytes | None = None
        for c in self.clients:
            try:
                c.queue.put_nowait(data)
            except asyncio.QueueFull:
                while not c.queue.empty():
                    c.queue.get_nowait()
                snapshot = snapshot or sse(self.model.snapshot())
                c.queue.put_nowait(snapshot)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.period_s)
            self.push_now()
