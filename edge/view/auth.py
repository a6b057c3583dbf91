"""Logins for the page: scrypt password hashes, sessions, and a limit on wrong passwords.

A hash is `scrypt$N$r$p$<salt, base64>$<key, base64>` (hashlib.scrypt, 32-byte key), made by
`bess-edge view-password`. Sessions and the failure counters are bounded in number, so a
flood of logins cannot grow the server's memory.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import hmac
import secrets
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ROLES = ("viewer", "operator")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
KEY_BYTES = 32
MAX_TRACKED = 10_000


def hash_password(password: str, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(key).decode()}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    kind, n, r, p, salt, key = stored.split("$")
    if kind != "scrypt":
        raise ValueError(kind)
    return (
        int(n),
        int(r),
        int(p),
        base64.b64decode(salt, validate=True),
        base64.b64decode(key, validate=True),
    )


def check_hash_format(stored: str) -> str | None:
    """None if `stored` is a usable hash, else what is wrong with it."""
    try:
        n, r, p, salt, key = _parse(stored)
    except (ValueError, binascii.Error):
        return "not a scrypt hash (scrypt$N$r$p$salt$key); make one with bess-edge view-password"
    if n < 2**10 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16:
        return "scrypt parameters out of range (N a power of two >= 1024, r 1..64, p 1..16)"
    if len(salt) < 8 or len(key) < 16:
        return "salt or key too short"
    return None


def verify_password(password: str, stored: str) -> bool:
    try:
        n, r, p, salt, key = _parse(stored)
        got = hashlib.scrypt(
            password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(key), maxmem=2**27
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(got, key)


class RateLimiter:
    """At most `max_failures` wrong passwords per key within `window_s`; then refused until
    the oldest failure leaves the window. Keys are client addresses and user names."""

    def __init__(
        self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str) -> float:
        """0 when `key` may try now, else the seconds to wait."""
        q = self._fails.get(key)
        if not q:
            return 0.0
        now = self.clock()
        while q and now - q[0] >= self.window_s:
            q.popleft()
        if len(q) < self.max_failures:
            return 0.0
        return max(0.0, self.window_s - (now - q[0]))

    def failure(self, key: str) -> None:
        q = self._fails.pop(key, None) or deque(maxlen=self.max_failures)
        q.append(self.clock())
        self._fails[key] = q
        while len(self._fails) > MAX_TRACKED:
            self._fails.popitem(last=False)


@dataclass(frozen=True)
class Session:
    user: str
    role: str
    expires: float


class Sessions:
    """Random tokens (the session cookie) -> user and role, with an expiry."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._by_token: OrderedDict[str, Session] = OrderedDict()

    def create(self, user: str, role: str) -> str:
        token = secrets.token_urlsafe(32)
        self._by_token[token] = Session(user, role, self.clock() + self.ttl_s)
        while len(self._by_token) > MAX_TRACKED:
            self._by_token.popitem(last=False)
        return token

    def get(self, token: str | None) -> Session | None:
        s = self._by_token.get(token or "")
        if s is None:
            return None
        if self.clock() >= s.expires:
            del self._by_token[token or ""]
            return None
        return s

    def drop(self, token: str | None) -> None:
        self._by_token.pop(token or "", None)


def register(sub: Any) -> None:
    """Entry point `bess_edge.commands: view-password`."""
    p = sub.add_parser(
        "view-password", help="make a password_hash for [[view.users]] (reads the password)"
    )
    p.add_argument("--stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=_cmd_hash)


def _cmd_hash(args: Any) -> int:
    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("the two passwords differ", file=sys.stderr)
            return 2
    if len(password) < 8:
        print("password: at least 8 characters", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0
