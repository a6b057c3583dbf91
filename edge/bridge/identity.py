"""LFDI and SFDI (IEEE 2030.5 §6.3.4): how a device is named by its certificate. No I/O."""

from __future__ import annotations

import hashlib
import re

LFDI_RE = re.compile(r"^[0-9a-f]{40}$")


def lfdi_from_cert(cert_der: bytes) -> str:
    """First 160 bits of SHA-256 over the certificate's DER, as 40 lower-case hex digits."""
    return hashlib.sha256(cert_der).hexdigest()[:40]


def check_digit(n: int) -> int:
    """The digit that makes the sum of all digits a multiple of 10."""
    return (10 - sum(int(d) for d in str(n)) % 10) % 10


def sfdi_from_lfdi(lfdi: str) -> int:
    """First 36 bits of the LFDI as a decimal number, with its check digit appended."""
    lf = normalise_lfdi(lfdi)
    base = int(lf[:9], 16)
    return base * 10 + check_digit(base)


def sfdi_valid(sfdi: int) -> bool:
    return sfdi >= 0 and check_digit(sfdi // 10) == sfdi % 10


def normalise_lfdi(lfdi: str) -> str:
    """LFDIs arrive upper- or lower-case; we keep lower-case. Raises ValueError if malformed."""
    lf = lfdi.strip().lower()
    if not LFDI_RE.match(lf):
        raise ValueError(f"LFDI {lfdi!r} must be 40 hexadecimal digits")
    return lf


NMI_RE = re.compile(r"^[0-9A-HJ-NP-Z]{10}[0-9]?$")  # AEMO: no I or O


def nmi_checksum(nmi10: str) -> int:
    """AEMO's NMI check digit: ASCII values, every second one from the right doubled, digits
    summed; the digit that makes the sum a multiple of 10."""
    total, double = 0, True
    for ch in reversed(nmi10.upper()):
        v = ord(ch) * (2 if double else 1)
        double = not double
        total += sum(int(d) for d in str(v))
    return (10 - total % 10) % 10


def nmi_valid(nmi: str) -> bool:
    """A National Metering Identifier: 10 characters, plus its check digit if 11."""
    n = nmi.strip().upper()
    if not NMI_RE.match(n):
        return False
    return len(n) == 10 or int(n[10]) == nmi_checksum(n[:10])
