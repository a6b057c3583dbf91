"""Serve cactus-client-notifications on loopback for the conformance run (conformance venv only).

    .venv-conformance/bin/python tests/conformance/webhook.py CERT KEY

Two listeners on free loopback ports: the webhooks (`/webhook/{id}`, where the bridge POSTs its
Notifications) over TLS with a certificate of the test CA, because the bridge sends
notifications only to `https://` URIs; and the management API that cactus-client uses to create
and collect webhooks, over plain HTTP (cactus talks to it without our CA). Prints
`{"webhook": port, "admin": port}` on one line once both listen, then serves until killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import sys


def _listen() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


async def main(cert: str, key: str) -> None:
    hook, admin = _listen(), _listen()
    # the server module builds its app at import time from these variables
    os.environ["SERVER_URL"] = f"https://127.0.0.1:{hook.getsockname()[1]}"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    from aiohttp import web
    from cactus_client_notifications.server.main import app

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, hook, ssl_context=ctx).start()
    await web.SockSite(runner, admin).start()
    print(json.dumps({"webhook": hook.getsockname()[1], "admin": admin.getsockname()[1]}),
          flush=True)  # fmt: skip
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
