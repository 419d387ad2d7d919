"""Password hashing (bcrypt, cost from settings) and the password policy."""

from __future__ import annotations

import hashlib
from functools import lru_cache

import bcrypt
from zxcvbn import zxcvbn

from cims.config import get_settings

MIN_LENGTH = 12
# bcrypt only reads 72 bytes; pre-hash long (e.g. Chinese) passphrases so all of it counts.
_BCRYPT_LIMIT = 72


def _prepare(password: str) -> bytes:
    raw = password.encode("utf-8")
    if len(raw) > _BCRYPT_LIMIT:
        raw = hashlib.sha256(raw).hexdigest().encode()
    return raw


def hash_password(password: str, *, rounds: int | None = None) -> str:
    """bcrypt hash of ``password`` at the configured cost."""
    cost = rounds if rounds is not None else get_settings().bcrypt_rounds
    return bcrypt.hashpw(_prepare(password), bcrypt.gensalt(rounds=cost)).decode()


def verify_password(password: str, hashed: str | None) -> bool:
    """Check a password; with no hash, still spend one bcrypt so timing reveals nothing."""
    if not hashed:
        bcrypt.checkpw(_prepare(password), _dummy_hash().encode())
        return False
    try:
        return bcrypt.checkpw(_prepare(password), hashed.encode())
    except ValueError:
        return False


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password("cims-dummy-password-for-timing")


def password_problems(password: str, *, username: str = "") -> list[str]:
    """Policy errors as translation keys (empty when the password is acceptable)."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append("password.too_short")
    lowered = password.lower()
    if username and username.lower() in lowered:
        problems.append("password.contains_username")
    if len(set(password)) < 5:
        problems.append("password.too_simple")
    if lowered in _COMMON or any(word in lowered for word in _COMMON_PARTS):
        problems.append("password.too_common")
    elif not problems and zxcvbn(password[:100], user_inputs=[username, "cims"])["score"] < 3:
        # zxcvbn knows keyboard walks, dates, l33t and dictionary words (score 0-4).
        problems.append("password.too_guessable")
    return problems


_COMMON = {
    "123456789012",
    "password1234",
    "qwertyuiop12",
    "iloveyou1234",
    "aaaaaaaaaaaa",
    "abcdefghijkl",
}
_COMMON_PARTS = ("password", "12345678", "qwerty", "abc123", "woaini", "admin123")
