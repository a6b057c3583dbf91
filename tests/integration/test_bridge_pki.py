"""Test PKI for the 2030.5 bridge (openssl CLI, P-256, into tmp dirs), and its own checks.

`make_pki(dir)` builds a CA, a server certificate for 127.0.0.1 and named device certificates;
`Pki.client_context(name)` is what a 2030.5 device uses: TLS 1.2, ECDHE-ECDSA-AES128-CCM8.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from edge.bridge.pki import CIPHER, Pki, make_ca, openssl_available
from edge.bridge.pki import make_pki as _make_pki

__all__ = ["CIPHER", "Pki", "make_pki", "make_rogue"]


def make_pki(d: Path, *devices: str) -> Pki:
    if not openssl_available():
        pytest.skip("openssl CLI not found; needed to make test certificates")
    return _make_pki(d, *devices)


def make_rogue(pki: Pki, name: str) -> None:
    """A device certificate signed by a CA the bridge does not trust."""
    make_ca(pki.dir, "rogue-ca")
    pki.add_device(name, ca="rogue-ca")


def test_lfdi_is_the_sha256_of_the_der_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, "dev")
    der = pki.der("dev")
    # Independent computation: openssl's own SHA-256 fingerprint of the same certificate.
    out = subprocess.run(
        ["openssl", "x509", "-in", str(pki.devices["dev"][0]), "-noout", "-fingerprint", "-sha256"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    fingerprint = out.strip().split("=", 1)[1].replace(":", "").lower()
    assert pki.lfdi("dev") == fingerprint[:40] == hashlib.sha256(der).hexdigest()[:40]
    sfdi = pki.sfdi("dev")
    assert sum(int(c) for c in str(sfdi)) % 10 == 0
