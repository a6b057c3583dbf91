"""The thin HTTPS shell: TLS 1.2 with client certificates, LFDI from the peer certificate.

Everything else happens in BridgeCore. Plain HTTP exists only for a trusted TLS-terminating
proxy that forwards the client certificate in a header (as envoy's reference server expects),
and only when [bridge.proxy] is configured; then requests from other peers are refused.
"""

from __future__ import annotations

import base64
import binascii
import logging
import ssl
import urllib.parse
from typing import Any

from aiohttp import web

from edge.bridge.config import BridgeConfig, BridgeProxy, BridgeTls
from edge.bridge.core import BridgeCore
from edge.bridge.identity import lfdi_from_cert

log = logging.getLogger(__name__)


class TlsSetupError(ValueError):
    """The TLS configuration cannot be used (missing file, cipher unknown to OpenSSL, ...)."""


def make_ssl_context(tls: BridgeTls) -> ssl.SSLContext:
    """TLS 1.2 only (2030.5), the configured cipher list, client certificate required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.3 would ignore the cipher list
    try:
        ctx.set_ciphers(":".join(tls.ciphers))
    except ssl.SSLError:
        raise TlsSetupError(
            f"bridge.tls.ciphers: OpenSSL knows none of {list(tls.ciphers)}"
        ) from None
    try:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(f"bridge.tls.cert_file/key_file: {exc}") from None
    try:
        ctx.load_verify_locations(tls.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(f"bridge.tls.ca_file: {exc}") from None
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def cert_from_header(value: str) -> bytes | None:
    """A forwarded client certificate: URL-escaped PEM (nginx), PEM, or base64 DER."""
    text = urllib.parse.unquote(value).strip()
    try:
        if "BEGIN CERTIFICATE" in text:
            der = ssl.PEM_cert_to_DER_cert(text.replace("\t", "\n"))
        else:
            der = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    # An X.509 certificate is a DER SEQUENCE with a long-form length; anything else is noise.
    return der if len(der) > 64 and der[0] == 0x30 and der[1] in (0x81, 0x82, 0x83) else None


def peer_lfdi(request: web.Request, proxy: BridgeProxy | None) -> str | None:
    if proxy is not None:
        peer = request.remote or ""
        if peer not in proxy.allowed_peers:
            log.warning("plain-HTTP request from %s, not a trusted proxy: refused", peer)
            return None
        value = request.headers.get(proxy.cert_header)
        der = cert_from_header(value) if value else None
        return lfdi_from_cert(der) if der else None
    transport = request.transport
    sslobj: Any = transport.get_extra_info("ssl_object") if transport is not None else None
    if sslobj is None:
        return None
    der = sslobj.getpeercert(binary_form=True)
    return lfdi_from_cert(der) if der else None


def make_app(core: BridgeCore, cfg: BridgeConfig) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413)
        lfdi = peer_lfdi(request, cfg.proxy)
        reply = core.handle(request.method, request.path, request.query, body, lfdi)
        headers = {"Location": reply.location} if reply.location else None
        if reply.body:
            return web.Response(
                status=reply.status,
                body=reply.body,
                headers=headers,
                content_type=reply.content_type,
            )
        return web.Response(status=reply.status, headers=headers)

    app = web.Application(client_max_size=cfg.max_body_bytes)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def start_server(
    core: BridgeCore, cfg: BridgeConfig, ssl_context: ssl.SSLContext | None
) -> tuple[web.AppRunner, int]:
    """Start listening; returns the runner (to clean up) and the bound port (cfg.port may be 0)."""
    if ssl_context is None and cfg.proxy is None:
        raise TlsSetupError("refusing plain HTTP without [bridge.proxy]")
    runner = web.AppRunner(make_app(core, cfg), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port, ssl_context=ssl_context)
    await site.start()
    server: Any = site._server
    port = int(server.sockets[0].getsockname()[1]) if server and server.sockets else cfg.port
    return runner, port
