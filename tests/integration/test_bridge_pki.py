"""Test PKI for the 2030.5 bridge (openssl CLI, P-256, into tmp dirs), and its own checks.

`make_pki(dir)` builds a CA, a server certificate for 127.0.0.1 and named device certificates;
`Pki.client_context(name)` is what a 2030.5 device uses: TLS 1.2, ECDHE-ECDSA-AES128-CCM8.
"""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge.bridge.identity import lfdi_from_cert, sfdi_from_lfdi

CIPHER = "ECDHE-ECDSA-AES128-CCM8"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@dataclass
class Pki:
    dir: Path
    devices: dict[str, tuple[Path, Path]] = field(default_factory=dict)

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def server(self) -> tuple[Path, Path]:
        return self.dir / "server.pem", self.dir / "server.key"

    def der(self, name: str) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.devices[name][0].read_text())

    def lfdi(self, name: str) -> str:
        return lfdi_from_cert(self.der(name))

    def sfdi(self, name: str) -> int:
        return sfdi_from_lfdi(self.lfdi(name))

    def client_context(self, name: str | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(CIPHER)
        if name is not None:
            cert, key = self.devices[name]
            ctx.load_cert_chain(str(cert), str(key))
        return ctx

    def add_device(self, name: str, ca: str = "ca") -> None:
        d = self.dir
        _openssl(
            "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=d
        )
        _openssl(
            "req",
            "-new",
            "-key",
            f"{name}.key",
            "-subj",
            f"/CN={name}",
            "-out",
            f"{name}.csr",
            cwd=d,
        )
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-sha256", "-out", f"{name}.pem", cwd=d,
        )  # fmt: skip
        self.devices[name] = (d / f"{name}.pem", d / f"{name}.key")


def _make_ca(d: Path, name: str) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=d)
    _openssl(
        "req", "-x509", "-new", "-key", f"{name}.key", "-sha256", "-days", "2",
        "-subj", f"/CN={name}", "-out", f"{name}.pem", cwd=d,
    )  # fmt: skip


def make_pki(d: Path, *devices: str) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not found; needed to make test certificates")
    d.mkdir(parents=True, exist_ok=True)
    _make_ca(d, "ca")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key", cwd=d)
    _openssl(
        "req", "-new", "-key", "server.key", "-subj", "/CN=localhost", "-out", "server.csr", cwd=d
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-sha256", "-extfile", "san.ext", "-out", "server.pem", cwd=d,
    )  # fmt: skip
    pki = Pki(d)
    for name in devices:
        pki.add_device(name)
    return pki


def make_rogue(pki: Pki, name: str) -> None:
    """A device certificate signed by a CA the bridge does not trust."""
    _make_ca(pki.dir, "rogue-ca")
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
