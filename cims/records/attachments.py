"""Document attachments: size and type limits, encrypted bytes, checked downloads.

A file is accepted only when its declared content type is allowed AND its first bytes
match that type (a renamed executable is refused). The bytes are encrypted bound to
the row id; the SHA-256 of the plaintext is kept and checked on every download.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.config import get_settings
from cims.patients.models import Patient
from cims.records.models import Attachment, Encounter
from cims.security import audit
from cims.security.care import clinical_access
from cims.security.crypto import DecryptionError, load_cipher
from cims.security.models import User
from cims.security.rbac import Actor, Privilege, requires

# Content type -> (leading bytes that prove it, or None for text; file extensions).
KNOWN_TYPES: Final[dict[str, tuple[bytes | None, tuple[str, ...]]]] = {
    "application/pdf": (b"%PDF-", (".pdf",)),
    "image/png": (b"\x89PNG\r\n\x1a\n", (".png",)),
    "image/jpeg": (b"\xff\xd8\xff", (".jpg", ".jpeg")),
    "text/plain": (None, (".txt",)),
}
MAX_FILENAME: Final = 120
_UNSAFE: Final = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')


class InvalidAttachment(ValueError):
    """An upload or download that cannot be accepted; ``problems`` are i18n keys."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(", ".join(problems))


@dataclass(frozen=True)
class AttachmentView:
    """An attachment's description (never its bytes)."""

    id: int
    patient_id: int
    encounter_id: int | None
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    uploaded_at: dt.datetime
    uploaded_by: str


@dataclass(frozen=True)
class AttachmentFile:
    """A decrypted, integrity-checked attachment ready to hand to the user."""

    filename: str
    content_type: str
    data: bytes


def _looks_like_text(data: bytes) -> bool:
    """UTF-8 without control characters other than tab, newlines and form feed."""
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(ord(c) < 32 and c not in "\t\n\r\f" for c in decoded)


def content_matches(content_type: str, data: bytes) -> bool:
    """Whether the bytes are what the declared type says (magic bytes, or clean text)."""
    known = KNOWN_TYPES.get(content_type)
    if known is None:
        return False
    magic = known[0]
    return _looks_like_text(data) if magic is None else data.startswith(magic)


def sanitise_filename(filename: str, content_type: str) -> str:
    """A safe display/download name: no path, no control or reserved characters."""
    name = unicodedata.normalize("NFKC", filename)
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE.sub("_", name).strip().lstrip(".").strip()
    extensions = KNOWN_TYPES.get(content_type, (None, ()))[1]
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    if extensions and f".{ext.lower()}" not in extensions:
        stem, ext = name, extensions[0].lstrip(".")
    stem = stem[: MAX_FILENAME - len(ext) - 1].strip() or "attachment"
    return f"{stem}.{ext}" if ext else stem


def _problems(content_type: str, data: bytes) -> list[str]:
    settings = get_settings()
    problems = []
    if not data:
        problems.append("attachments.empty")
    elif len(data) > settings.attachment_max_mb * 1024 * 1024:
        problems.append("attachments.too_large")
    if content_type not in settings.attachment_types or content_type not in KNOWN_TYPES:
        problems.append("attachments.type_not_allowed")
    elif data and not content_matches(content_type, data):
        problems.append("attachments.content_mismatch")
    return problems


def _view(row: Attachment, uploaded_by: str) -> AttachmentView:
    return AttachmentView(
        id=row.id,
        patient_id=row.patient_id,
        encounter_id=row.encounter_id,
        filename=row.filename,
        content_type=row.content_type,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        uploaded_at=row.uploaded_at,
        uploaded_by=uploaded_by,
    )


def _audit(session: Session, actor: Actor, action: str, row: Attachment) -> None:
    audit.record(
        session,
        actor,
        action,
        patient_id=row.patient_id,
        object_type="attachment",
        object_id=row.id,
        detail={"content_type": row.content_type, "size_bytes": row.size_bytes},
    )


# Nurses file scanned outside reports as much as doctors do: the charting privilege
# both hold, not the doctor-only WRITE_CLINICAL.
def store_attachment(
    session: Session,
    actor: Actor,
    *,
    patient_id: int,
    encounter_id: int | None,
    filename: str,
    content_type: str,
    data: bytes,
) -> Attachment:
    """Check type and size, encrypt and insert (callers check access and write the audit)."""
    content_type = content_type.strip().lower()
    problems = _problems(content_type, data)
    patient = session.get(Patient, patient_id)
    if patient is None or patient.voided or patient.merged_into_id is not None:
        raise InvalidAttachment(["attachments.patient_not_found"])
    if encounter_id is not None:
        encounter = session.get(Encounter, encounter_id)
        if encounter is None or encounter.voided or encounter.patient_id != patient_id:
            problems.append("attachments.encounter_mismatch")
    if problems:
        raise InvalidAttachment(problems)
    cipher = load_cipher(session)
    # The id comes first: the ciphertext's associated data is bound to it.
    new_id = int(
        session.scalar(text("SELECT nextval(pg_get_serial_sequence('attachments', 'id'))"))
    )
    row = Attachment(
        id=new_id,
        patient_id=patient_id,
        encounter_id=encounter_id,
        filename=sanitise_filename(filename, content_type),
        content_type=content_type,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_enc=cipher.encrypt(data, table="attachments", column="content", row_id=new_id),
        uploaded_at=utcnow(),
        created_by_id=actor.user_id,
    )
    session.add(row)
    session.flush()
    return row


def read_attachment(session: Session, row: Attachment) -> AttachmentFile:
    """Decrypt an attachment and prove it is the file that was uploaded (no access check)."""
    try:
        data = load_cipher(session).decrypt(
            row.content_enc, table="attachments", column="content", row_id=row.id
        )
    except DecryptionError as exc:
        raise InvalidAttachment(["attachments.corrupt"]) from exc
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise InvalidAttachment(["attachments.corrupt"])
    return AttachmentFile(filename=row.filename, content_type=row.content_type, data=data)


@requires(Privilege.RECORD_VITALS)
def upload_attachment(
    *,
    session: Session,
    actor: Actor,
    patient_id: int,
    encounter_id: int | None = None,
    filename: str,
    content_type: str,
    data: bytes,
) -> AttachmentView:
    """Store a document for a patient in the actor's care (checked, then encrypted)."""
    patient = session.get(Patient, patient_id)
    if patient is not None and not patient.voided:
        clinical_access(session, actor, patient_id)
    row = store_attachment(
        session,
        actor,
        patient_id=patient_id,
        encounter_id=encounter_id,
        filename=filename,
        content_type=content_type,
        data=data,
    )
    _audit(session, actor, "records.upload_attachment", row)
    return _view(row, actor.display_name)


def _live_or_raise(session: Session, attachment_id: int, *, lock: bool = False) -> Attachment:
    row = session.get(Attachment, attachment_id, with_for_update=lock)
    if row is None or row.voided:
        raise InvalidAttachment(["attachments.not_found"])
    return row


@requires(Privilege.VIEW_CLINICAL)
def download_attachment(*, session: Session, actor: Actor, attachment_id: int) -> AttachmentFile:
    """Decrypt an attachment and prove it is the file that was uploaded."""
    row = _live_or_raise(session, attachment_id)
    clinical_access(session, actor, row.patient_id)
    found = read_attachment(session, row)
    _audit(session, actor, "records.download_attachment", row)
    return found


@requires(Privilege.VIEW_CLINICAL)
def list_attachments(*, session: Session, actor: Actor, patient_id: int) -> list[AttachmentView]:
    """A patient's live attachments, newest first (descriptions only)."""
    clinical_access(session, actor, patient_id)
    rows = session.execute(
        select(Attachment, User.display_name)
        .outerjoin(User, User.id == Attachment.created_by_id)
        .where(Attachment.patient_id == patient_id, Attachment.voided.is_(False))
        .order_by(Attachment.uploaded_at.desc(), Attachment.id.desc())
    ).all()
    audit.record(
        session,
        actor,
        "records.list_attachments",
        patient_id=patient_id,
        object_type="attachment",
        detail={"rows": len(rows)},
    )
    return [_view(row, name or "") for row, name in rows]


@requires(Privilege.RECORD_VITALS)
def void_attachment(*, session: Session, actor: Actor, attachment_id: int, reason: str) -> None:
    """Withdraw an attachment filed in error (kept, never deleted; the reason is kept)."""
    if not reason.strip():
        raise InvalidAttachment(["attachments.reason_required"])
    row = _live_or_raise(session, attachment_id, lock=True)
    clinical_access(session, actor, row.patient_id)
    row.voided = True
    row.voided_at = utcnow()
    row.void_reason = reason.strip()
    row.voided_by_id = actor.user_id
    row.updated_by_id = actor.user_id
    session.flush()
    _audit(session, actor, "records.void_attachment", row)
