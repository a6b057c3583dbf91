"""A local PKI for the 2030.5 bridge (openssl CLI, P-256): a CA, a server certificate for
127.0.0.1/localhost and named device certificates.

Used by `bess-edge demo` (so the demo bridge has certificates to serve and a device to
pre-register) and by the tests. Production sites bring their own PKI.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from edge.bridge.identity import lfdi_from_cert, sfdi_from_lfdi

CIPHER = "ECDHE-ECDSA-AES128-CCM8"


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@dataclass
class Pki:
    dir: Path
    days: int = 2
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
        """What a 2030.5 device uses: TLS 1.2, ECDHE-ECDSA-AES128-CCM8, its own certificate."""
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
            "req", "-new", "-key", f"{name}.key", "-subj", f"/CN={name}",
            "-out", f"{name}.csr", cwd=d,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", str(self.days), "-sha256", "-out", f"{name}.pem", cwd=d,
        )  # fmt: skip
        self.devices[name] = (d / f"{name}.pem", d / f"{name}.key")


def make_ca(d: Path, name: str, days: int = 2) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=d)
    _openssl(
        "req", "-x509", "-new", "-key", f"{name}.key", "-sha256", "-days", str(days),
        "-subj", f"/CN={name}", "-out", f"{name}.pem", cwd=d,
    )  # fmt: skip


def make_pki(d: Path, *devices: str, days: int = 2) -> Pki:
    """A fresh CA, server certificate and device certificates in `d`. Needs the openssl CLI."""
    d.mkdir(parents=True, exist_ok=True)
    make_ca(d, "ca", days)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key", cwd=d)
    _openssl(
        "req", "-new", "-key", "server.key", "-subj", "/CN=localhost", "-out", "server.csr", cwd=d
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", str(days), "-sha256", "-extfile", "san.ext", "-out", "server.pem", cwd=d,
    )  # fmt: skip
    pki = Pki(d, days)
    for name in devices:
        pki.add_device(name)
    return pki


def load_or_make_pki(d: Path, *devices: str, days: int = 365) -> Pki:
    """Reuse the PKI in `d` if it has every file, else make a new one (the demo's PKI)."""
    pki = Pki(d, days, {n: (d / f"{n}.pem", d / f"{n}.key") for n in devices})
    files = [pki.ca, *pki.server, *(p for pair in pki.devices.values() for p in pair)]
    if all(f.exists() for f in files):
        return pki
    return make_pki(d, *devices, days=days)
