"""One-time sign-in codes over a message channel, behind a pluggable delivery adapter.

The default adapter writes the message to the notification outbox, where an SMS or e-mail
gateway (outside CIMS) picks it up; tests and demos read it there. The code itself is kept
only as a hash; the outbox row is the hand-over to the gateway.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.config import get_settings
from cims.engagement.models import OutboxMessage
from cims.security import audit
from cims.security.models import OneTimeCode, User

CODE_LIFETIME = dt.timedelta(minutes=5)
RESEND_AFTER = dt.timedelta(seconds=60)
MAX_PER_HOUR = 5
MAX_ATTEMPTS = 5


class MessageChannel(Protocol):
    """Delivers a sign-in code to a user."""

    name: str

    def deliver(self, session: Session, user: User, code: str) -> None:
        """Hand the code to the channel (must not commit)."""


class OutboxChannel:
    """Default adapter: an SMS message waiting in the notification outbox."""

    name = "sms"

    def deliver(self, session: Session, user: User, code: str) -> None:
        """Queue the message for the SMS gateway."""
        session.add(
            OutboxMessage(
                channel="sms",
                recipient=f"user:{user.id}",
                template="signin.message_code",
                params={"code": code, "minutes": int(CODE_LIFETIME.total_seconds() // 60)},
            )
        )


def _hash(user_id: int, code: str) -> str:
    key = get_settings().key_bytes("blind_index_key")
    return hmac.new(key, f"otp:{user_id}:{code.strip()}".encode(), hashlib.sha256).hexdigest()


def channel() -> MessageChannel | None:
    """The configured adapter, or None when message codes are switched off."""
    return OutboxChannel() if get_settings().message_codes == "outbox" else None


def send_code(
    *,
    session: Session,
    user_id: int,
    via: MessageChannel | None = None,
    pending_ok: bool = False,
) -> bool:
    """Send a fresh code unless one went out under a minute ago or the hourly cap is hit.

    ``pending_ok`` allows an account not yet active (a patient proving who they are while
    signing up); otherwise only active accounts get codes.
    """
    adapter = via or channel()
    user = session.get(User, user_id)
    if adapter is None or user is None or not (user.is_active or pending_ok):
        return False
    now = utcnow()
    recent = session.execute(
        select(func.count(OneTimeCode.id), func.max(OneTimeCode.created_at)).where(
            OneTimeCode.user_id == user_id, OneTimeCode.created_at > now - dt.timedelta(hours=1)
        )
    ).one()
    if recent[0] >= MAX_PER_HOUR or (recent[1] is not None and recent[1] > now - RESEND_AFTER):
        return False
    code = f"{secrets.randbelow(10**6):06d}"
    session.add(
        OneTimeCode(
            user_id=user_id,
            channel=adapter.name,
            code_hash=_hash(user_id, code),
            created_at=now,
            expires_at=now + CODE_LIFETIME,
        )
    )
    adapter.deliver(session, user, code)
    audit.record(
        session,
        None,
        "auth.message_code_sent",
        object_type="user",
        object_id=user_id,
        username=user.username,
        detail={"channel": adapter.name},
    )
    return True


def check_code(*, session: Session, user_id: int, code: str) -> bool:
    """Accept the newest unexpired code once; five wrong tries spend it."""
    row = session.scalar(
        select(OneTimeCode)
        .where(
            OneTimeCode.user_id == user_id,
            OneTimeCode.used_at.is_(None),
            OneTimeCode.expires_at > utcnow(),
        )
        .order_by(OneTimeCode.created_at.desc())
        .limit(1)
        .with_for_update()
    )
    if row is None or row.attempts >= MAX_ATTEMPTS:
        return False
    if hmac.compare_digest(row.code_hash, _hash(user_id, code)):
        row.used_at = utcnow()
        return True
    row.attempts += 1
    return False
