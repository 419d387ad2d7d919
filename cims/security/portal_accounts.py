"""Patients open their own portal account and reset a forgotten password.

Identity is proven by the MRN plus the resident ID or mobile number on record (compared
through the blind indexes, never decrypted) and a one-time code sent to the mobile on
record through the message channel. Every answer to an unverified caller is the same, so
the forms never reveal whether an MRN exists or already has an account. The pending
account (inactive, unusable password) exists only to carry the code until it is used.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.patients.models import Patient
from cims.security import audit, otp_channel
from cims.security.accounts import create_account
from cims.security.crypto import load_cipher
from cims.security.models import User
from cims.security.passwords import hash_password, password_problems
from cims.security.signin import revoke_user_sessions
from cims.text_guard import without_nul

PENDING_PREFIX: Final = "pending_"


class PortalAccountRefused(ValueError):
    """The code or the chosen username or password was not accepted (message keys)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(", ".join(problems))


@dataclass(frozen=True)
class Ticket:
    """What the second step needs: the account the code was sent for."""

    user_id: int


def _identify(session: Session, mrn: str, id_or_phone: str) -> Patient | None:
    """The live patient with this MRN whose ID or mobile on record equals ``id_or_phone``."""
    patient = session.scalar(select(Patient).where(Patient.mrn == mrn.strip()))
    value = "".join(id_or_phone.split()).upper()
    if patient is None or patient.voided or patient.merged_into_id is not None or not value:
        return None
    cipher = load_cipher(session)
    by_id = cipher.blind_index(value, purpose="national_id") == patient.national_id_bidx
    by_phone = cipher.blind_index(value, purpose="phone") == patient.phone_bidx
    return patient if (by_id or by_phone) and patient.phone_bidx is not None else None


def _refused(session: Session, action: str, reason: str) -> None:
    audit.record_separately(
        session.get_bind(), None, action, outcome="denied", detail={"reason": reason}
    )


def start_signup(*, session: Session, mrn: str, id_or_phone: str) -> Ticket | None:
    """Send a code to the patient's mobile if the details match and there is no account yet."""
    patient = _identify(session, without_nul(mrn), without_nul(id_or_phone))
    if patient is None:
        _refused(session, "auth.portal_signup", "identity")
        return None
    user = session.scalar(select(User).where(User.patient_id == patient.id))
    if user is not None and not user.username.startswith(PENDING_PREFIX):
        _refused(session, "auth.portal_signup", "has_account")
        return None
    if user is None:
        user = create_account(
            session=session,
            username=f"{PENDING_PREFIX}{patient.id}_{secrets.token_hex(4)}",
            display_name=patient.full_name,
            password="",
            password_hash=hash_password(secrets.token_urlsafe(32)),  # never known to anyone
            roles=["patient"],
            patient_id=patient.id,
        )
        user.is_active = False
        session.flush()
    if not otp_channel.send_code(session=session, user_id=user.id, pending_ok=True):
        return None  # sent under a minute ago, or the hourly cap: the form says "wait"
    return Ticket(user.id)


def finish_signup(
    *, session: Session, ticket: Ticket, code: str, username: str, password: str
) -> User:
    """With the code from the message, choose a username and password; the account opens."""
    user = session.get(User, ticket.user_id, with_for_update=True)
    pending = user is not None and user.username.startswith(PENDING_PREFIX) and not user.is_active
    if user is None or not pending:
        raise PortalAccountRefused(["portal_signup.expired"])
    name = username.strip().lower()
    problems = password_problems(password, username=name)
    if not name or not name.replace("_", "").replace(".", "").isalnum() or len(name) > 40:
        problems.append("account.bad_username")
    taken = session.scalar(select(User.id).where(User.username == name, User.id != user.id))
    if taken is not None or name.startswith(PENDING_PREFIX):
        problems.append("account.username_taken")
    if problems:  # checked before the code, so a weak password does not spend it
        raise PortalAccountRefused(problems)
    if not otp_channel.check_code(session=session, user_id=user.id, code=code):
        raise PortalAccountRefused(["portal_signup.bad_code"])
    user.username = name
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    user.is_active = True
    session.flush()
    audit.record(
        session,
        None,
        "auth.portal_signup",
        patient_id=user.patient_id,
        object_type="user",
        object_id=user.id,
        username=name,
    )
    return user


def start_password_reset(*, session: Session, username: str, mrn: str) -> Ticket | None:
    """Send a code to the mobile on record of this patient account, if the details match."""
    name = without_nul(username.strip().lower())  # no account name holds a NUL
    user = session.scalar(select(User).where(User.username == name))
    patient = session.get(Patient, user.patient_id) if user and user.patient_id else None
    if user is None or patient is None or patient.mrn != mrn.strip() or not user.is_active:
        _refused(session, "auth.password_reset", "identity")
        return None
    if not otp_channel.send_code(session=session, user_id=user.id):
        return None
    return Ticket(user.id)


def finish_password_reset(*, session: Session, ticket: Ticket, code: str, password: str) -> None:
    """With the code from the message, set a new password; every session of the account ends."""
    user = session.get(User, ticket.user_id, with_for_update=True)
    if user is None or user.patient_id is None or not user.is_active:
        raise PortalAccountRefused(["portal_signup.expired"])
    problems = password_problems(password, username=user.username)
    if problems:  # checked before the code, so a weak password does not spend it
        raise PortalAccountRefused(problems)
    if not otp_channel.check_code(session=session, user_id=user.id, code=code):
        raise PortalAccountRefused(["portal_signup.bad_code"])
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    user.locked_until = None  # proving identity again lifts a lockout
    revoke_user_sessions(session, user.id, "password_reset")
    audit.record(
        session,
        None,
        "auth.password_reset",
        patient_id=user.patient_id,
        object_type="user",
        object_id=user.id,
        username=user.username,
    )
