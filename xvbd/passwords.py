"""Password and PIN hashes: salted scrypt (stdlib), in a self-describing string.  A bcrypt
hash imported from an htpasswd file (``$2y$…``) is accepted too, until the next login
replaces it with scrypt (:func:`needs_rehash`).  All are slow on purpose: call them off the
reactor (:func:`secret_matches` does)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Any

_N, _R, _P, _LEN = 2**15, 8, 1, 32
#: A phone PIN's scrypt cost: 4 MiB and a few milliseconds a check (``bench/pin_check.py``),
#: as every call that types a PIN pays it.  A PIN is a few digits: its hash keeps it out of
#: sight (pages, reports, backups), but cannot make a short PIN hard to find from its hash.
PIN_N = 2**12


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * 1024 * 1024, dklen=length)


def hash_password(password: str, n: int = _N) -> str:
    """``scrypt$N$r$p$salt$hash``; slow on purpose (tens of milliseconds)."""
    if not password:
        raise ValueError("the password must not be empty")
    salt = os.urandom(16)
    digest = _scrypt(password, salt, n, _R, _P, _LEN)
    return f"scrypt${n}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def new_pin(digits: int = 6) -> str:
    """A random PIN of ``digits`` digits, for the operator to hand on (shown once)."""
    import secrets

    return "".join(secrets.choice("0123456789") for _ in range(digits))


def hash_pin(pin: str) -> str:
    """A phone PIN's hash ('' for no PIN), at :data:`PIN_N`."""
    return hash_password(pin, PIN_N) if pin else ""


async def hash_pin_off_reactor(pin: str) -> str:
    """:func:`hash_pin` on the reactor's thread pool."""
    from twisted.internet.threads import deferToThread

    if not pin:
        return ""
    result: Any = await deferToThread(hash_pin, pin)
    return str(result)


async def secret_matches(secret: str, stored: str) -> bool:
    """Whether ``secret`` (a PIN, a password) matches ``stored`` (its hash), checked on the
    reactor's thread pool: the hash must not hold up calls.  Nothing matches an empty one."""
    from twisted.internet.threads import deferToThread

    if not secret or not stored:
        return False
    result: Any = await deferToThread(verify_password, secret, stored)
    return bool(result)


BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


def is_bcrypt(stored: str) -> bool:
    return stored.startswith(BCRYPT_PREFIXES) and len(stored) == 60


def needs_rehash(stored: str) -> bool:
    """A hash of another scheme (bcrypt from htpasswd) to replace with scrypt."""
    return not stored.startswith("scrypt$")


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; False for any other stored format."""
    if is_bcrypt(stored):
        import bcrypt

        try:
            return bool(bcrypt.checkpw(password.encode("utf-8"),
                                       ("$2b$" + stored[4:]).encode("ascii")))
        except ValueError:
            return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)
