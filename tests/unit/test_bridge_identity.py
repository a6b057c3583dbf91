"""LFDI/SFDI: the field notes' vectors and the check digit."""

from __future__ import annotations

import hashlib

import pytest

from edge.bridge.identity import (
    check_digit,
    lfdi_from_cert,
    normalise_lfdi,
    sfdi_from_lfdi,
    sfdi_valid,
)


@pytest.mark.parametrize(
    ("lfdi", "sfdi"),
    [
        ("3e4f45ab31edfe5b67e343e5e4562e31984e23e5", 167261211391),
        ("2ee1453c8a019b6be4ec91317dcf6082c2f8090a", 125842441685),
        ("3E4F45AB31EDFE5B67E343E5E4562E31984E23E5", 167261211391),  # case does not matter
    ],
)
def test_sfdi_vectors(lfdi: str, sfdi: int) -> None:
    assert sfdi_from_lfdi(lfdi) == sfdi
    assert sfdi_valid(sfdi)
    assert not sfdi_valid(sfdi + 1)


def test_lfdi_is_first_160_bits_of_sha256() -> None:
    der = b"\x30\x82\x01\x00not-really-a-certificate"
    assert lfdi_from_cert(der) == hashlib.sha256(der).hexdigest()[:40]
    assert len(lfdi_from_cert(der)) == 40


def test_check_digit_makes_digit_sum_a_multiple_of_ten() -> None:
    for n in (0, 7, 16726121139, 999999999):
        assert (sum(map(int, str(n))) + check_digit(n)) % 10 == 0


@pytest.mark.parametrize("bad", ["", "xyz", "3e4f45ab31edfe5b67e343e5e4562e31984e23e", "g" * 40])
def test_malformed_lfdi_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="40 hexadecimal"):
        normalise_lfdi(bad)
