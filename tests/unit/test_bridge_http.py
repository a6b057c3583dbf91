"""The HTTPS shell's pure parts: TLS context rules, forwarded certificates."""

from __future__ import annotations

import base64
import ssl
import urllib.parse
from pathlib import Path

import pytest

from edge.bridge.config import BridgeTls
from edge.bridge.http import TlsSetupError, cert_from_header, make_ssl_context
from tests.integration.test_bridge_pki import make_pki


def test_ssl_context_is_tls12_with_client_certificates(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, "dev")
    cert, key = pki.server
    ctx = make_ssl_context(BridgeTls(str(cert), str(key), str(pki.ca)))
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_2
    assert [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"] == [
        "ECDHE-ECDSA-AES128-CCM8"
    ]
    with pytest.raises(TlsSetupError, match="ciphers"):
        make_ssl_context(BridgeTls(str(cert), str(key), str(pki.ca), ("NO-SUCH-CIPHER",)))
    with pytest.raises(TlsSetupError, match="ca_file"):
        make_ssl_context(BridgeTls(str(cert), str(key), str(tmp_path / "missing.pem")))


def test_forwarded_certificate_forms(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, "dev")
    pem = pki.devices["dev"][0].read_text()
    der = pki.der("dev")
    assert cert_from_header(urllib.parse.quote(pem)) == der  # nginx $ssl_client_escaped_cert
    assert cert_from_header(pem) == der
    assert cert_from_header(base64.b64encode(der).decode()) == der
    assert cert_from_header("garbage!") is None
    assert cert_from_header("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----") is None
