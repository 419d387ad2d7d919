"""TOTP second factor (authenticator apps) and one-time recovery codes."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time

import pyotp

ISSUER = "CIMS"
RECOVERY_CODE_COUNT = 10


def new_totp_secret() -> str:
    """A fresh base32 TOTP secret."""
    return pyotp.random_base32()


def totp_code(secret: str) -> str:
    """The current six-digit code for ``secret``."""
    return pyotp.TOTP(secret).now()


def verify_totp(secret: str, code: str) -> bool:
    """Accept the current code or its neighbours (±30 s clock drift)."""
    return totp_step(secret, code) is not None


def totp_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step whose code ``code`` is (current or a neighbour), or None if none is."""
    cleaned = "".join(code.split())
    if not (cleaned.isdigit() and len(cleaned) == 6):
        return None
    totp = pyotp.TOTP(secret)
    moment = time.time() if now is None else now
    current = totp.timecode(dt.datetime.fromtimestamp(moment, dt.UTC))
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), cleaned):
            return step
    return None


def provisioning_uri(secret: str, username: str) -> str:
    """otpauth:// URI for QR enrolment in an authenticator app."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def new_recovery_codes() -> list[str]:
    """Ten human-friendly one-time recovery codes (shown once, stored hashed)."""
    return [
        f"{secrets.token_hex(2)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}"
        for _ in range(RECOVERY_CODE_COUNT)
    ]


def hash_recovery_code(code: str) -> str:
    """SHA-256 of a recovery code (codes are random, so a fast hash is enough)."""
    return hashlib.sha256(code.strip().lower().encode()).hexdigest()
