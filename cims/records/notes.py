"""Clinical notes in SOAP form: drafts, signing by the author, addenda after signing.

A signed note is final: corrections are addenda (signed notes pointing at it with
``amends_id``), never edits. The body is encrypted, bound to its row id, so the id is
taken from the sequence before anything is sealed.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.patients.models import Patient
from cims.records.models import ClinicalNote, Encounter
from cims.security import audit
from cims.security.care import clinical_access
from cims.security.crypto import FieldCipher, load_cipher
from cims.security.models import User
from cims.security.rbac import Actor, Privilege, requires
from cims.text_limits import MAX_REASON, TOO_LONG_KEY, too_long

SOAP_SECTIONS: Final = ("subjective", "objective", "assessment", "plan")
NOTE_TYPES: Final = (
    "progress",
    "outpatient",
    "admission",
    "discharge",
    "emergency",
    "consultation",
)
ADDENDUM_TYPE: Final = "addendum"
ADDENDUM_TITLE: Final = "补充记录 / Addendum"
MAX_TITLE: Final = 200
MAX_SECTION: Final = 20_000


class InvalidNote(ValueError):
    """A note change that cannot be accepted; ``problems`` are i18n keys."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(", ".join(problems))


@dataclass(frozen=True)
class Soap:
    """The four sections of a SOAP note."""

    subjective: str = ""
    objective: str = ""
    assessment: str = ""
    plan: str = ""

    def to_json(self) -> str:
        """The plaintext that is encrypted into ``body_enc``."""
        return json.dumps({name: getattr(self, name) for name in SOAP_SECTIONS}, ensure_ascii=False)


@dataclass(frozen=True)
class NoteView:
    """A decrypted note as shown on screen; addenda hang under the note they amend."""

    id: int
    patient_id: int
    encounter_id: int | None
    author_id: int | None
    author_name: str
    note_type: str
    title: str
    status: str
    soap: Soap | None  # SOAP notes
    text: str  # plain notes and addenda (for SOAP notes: the sections joined)
    written_at: dt.datetime
    signed_at: dt.datetime | None
    amends_id: int | None
    addenda: tuple[NoteView, ...] = ()

    @property
    def signed(self) -> bool:
        """Whether the note is final."""
        return self.status == "signed"


def parse_body(plaintext: str, *, is_soap: bool) -> tuple[Soap | None, str]:
    """Split a decrypted body into SOAP sections (when it is one) and display text."""
    if not is_soap:
        return None, plaintext
    try:
        raw = json.loads(plaintext)
    except ValueError:
        return None, plaintext
    if not isinstance(raw, dict):
        return None, plaintext
    soap = Soap(**{name: str(raw.get(name) or "") for name in SOAP_SECTIONS})
    joined = "\n".join(getattr(soap, name) for name in SOAP_SECTIONS if getattr(soap, name))
    return soap, joined


def _clean(soap: Soap, title: str) -> tuple[Soap, str, list[str]]:
    """Trimmed input and the problems with it (nothing is written when there are any)."""
    cleaned = Soap(**{name: getattr(soap, name).strip() for name in SOAP_SECTIONS})
    title = title.strip()
    problems = []
    if not title:
        problems.append("notes.title_required")
    elif len(title) > MAX_TITLE:
        problems.append("notes.title_too_long")
    if not any(getattr(cleaned, name) for name in SOAP_SECTIONS):
        problems.append("notes.body_required")
    if any(len(getattr(cleaned, name)) > MAX_SECTION for name in SOAP_SECTIONS):
        problems.append("notes.section_too_long")
    return cleaned, title, problems


def _seal(cipher: FieldCipher, note_id: int, plaintext: str) -> bytes:
    return cipher.encrypt(plaintext, table="clinical_notes", column="body", row_id=note_id)


def _next_id(session: Session) -> int:
    # The id comes first: the ciphertext's associated data is bound to it.
    return int(
        session.scalar(text("SELECT nextval(pg_get_serial_sequence('clinical_notes', 'id'))"))
    )


def _note_or_raise(session: Session, note_id: int) -> ClinicalNote:
    note = session.get(ClinicalNote, note_id, with_for_update=True)
    if note is None or note.voided:
        raise InvalidNote(["notes.not_found"])
    return note


def _own_draft(session: Session, actor: Actor, note_id: int) -> ClinicalNote:
    """The actor's own unsigned note (after the care check), or a translated refusal."""
    note = _note_or_raise(session, note_id)
    clinical_access(session, actor, note.patient_id)
    if note.status == "signed":
        raise InvalidNote(["notes.signed_is_final"])
    if note.author_id != actor.user_id:
        raise InvalidNote(["notes.not_author"])
    return note


def _audit(session: Session, actor: Actor, action: str, note: ClinicalNote) -> None:
    audit.record(
        session,
        actor,
        action,
        patient_id=note.patient_id,
        object_type="clinical_note",
        object_id=note.id,
        detail={"status": note.status, "note_type": note.note_type},
    )


@requires(Privilege.WRITE_CLINICAL)
def write_note(
    *,
    session: Session,
    actor: Actor,
    patient_id: int,
    encounter_id: int | None = None,
    title: str,
    note_type: str = "progress",
    subjective: str = "",
    objective: str = "",
    assessment: str = "",
    plan: str = "",
) -> NoteView:
    """Start a SOAP note as a draft (only its author may change or sign it)."""
    soap, title, problems = _clean(Soap(subjective, objective, assessment, plan), title)
    if note_type not in NOTE_TYPES:
        problems.append("notes.bad_type")
    patient = session.get(Patient, patient_id)
    if patient is None or patient.voided or patient.merged_into_id is not None:
        raise InvalidNote(["notes.patient_not_found"])
    if encounter_id is not None:
        encounter = session.get(Encounter, encounter_id)
        if encounter is None or encounter.voided or encounter.patient_id != patient_id:
            problems.append("notes.encounter_mismatch")
    if problems:
        raise InvalidNote(problems)
    clinical_access(session, actor, patient_id)
    cipher = load_cipher(session)
    note_id = _next_id(session)
    now = utcnow()
    note = ClinicalNote(
        id=note_id,
        patient_id=patient_id,
        encounter_id=encounter_id,
        author_id=actor.user_id,
        note_type=note_type,
        title=title,
        body_enc=_seal(cipher, note_id, soap.to_json()),
        is_soap=True,
        written_at=now,
        status="draft",
        created_by_id=actor.user_id,
    )
    session.add(note)
    session.flush()
    _audit(session, actor, "records.write_note", note)
    return _view(cipher, note, actor.display_name)


@requires(Privilege.WRITE_CLINICAL)
def update_draft(
    *,
    session: Session,
    actor: Actor,
    note_id: int,
    title: str,
    subjective: str = "",
    objective: str = "",
    assessment: str = "",
    plan: str = "",
) -> NoteView:
    """Replace the text of the actor's own draft; a signed note refuses."""
    soap, title, problems = _clean(Soap(subjective, objective, assessment, plan), title)
    note = _own_draft(session, actor, note_id)
    if problems:
        raise InvalidNote(problems)
    cipher = load_cipher(session)
    note.title = title
    note.body_enc = _seal(cipher, note.id, soap.to_json())
    note.is_soap = True
    note.updated_by_id = actor.user_id
    session.flush()
    _audit(session, actor, "records.update_note", note)
    return _view(cipher, note, actor.display_name)


@requires(Privilege.WRITE_CLINICAL)
def sign_note(*, session: Session, actor: Actor, note_id: int) -> NoteView:
    """Sign the actor's own draft: from now on it is final."""
    note = _own_draft(session, actor, note_id)
    now = utcnow()
    note.status = "signed"
    note.signed_at = now
    note.signed_by_id = actor.user_id
    note.updated_by_id = actor.user_id
    session.flush()
    _audit(session, actor, "records.sign_note", note)
    return _view(load_cipher(session), note, actor.display_name)


@requires(Privilege.WRITE_CLINICAL)
def add_addendum(*, session: Session, actor: Actor, note_id: int, text: str) -> NoteView:
    """Correct or complete a signed note with a signed addendum pointing at it."""
    body = text.strip()
    problems = []
    if not body:
        problems.append("notes.addendum_required")
    elif len(body) > MAX_SECTION:
        problems.append("notes.section_too_long")
    parent = _note_or_raise(session, note_id)
    clinical_access(session, actor, parent.patient_id)
    if parent.status != "signed":
        problems.append("notes.addendum_needs_signed")
    if problems:
        raise InvalidNote(problems)
    # Addenda of addenda hang under the original note: one flat list per note.
    root_id = parent.amends_id or parent.id
    cipher = load_cipher(session)
    addendum_id = _next_id(session)
    now = utcnow()
    addendum = ClinicalNote(
        id=addendum_id,
        patient_id=parent.patient_id,
        encounter_id=parent.encounter_id,
        author_id=actor.user_id,
        note_type=ADDENDUM_TYPE,
        title=ADDENDUM_TITLE,
        body_enc=_seal(cipher, addendum_id, body),
        is_soap=False,
        written_at=now,
        status="signed",
        signed_at=now,
        signed_by_id=actor.user_id,
        amends_id=root_id,
        created_by_id=actor.user_id,
    )
    session.add(addendum)
    session.flush()
    _audit(session, actor, "records.add_addendum", addendum)
    return _view(cipher, addendum, actor.display_name)


@requires(Privilege.WRITE_CLINICAL)
def void_draft(*, session: Session, actor: Actor, note_id: int, reason: str) -> None:
    """Withdraw the actor's own unsigned draft, with a reason (kept, never deleted)."""
    if not reason.strip():
        raise InvalidNote(["notes.reason_required"])
    if too_long(reason, MAX_REASON):
        raise InvalidNote([TOO_LONG_KEY])
    note = _own_draft(session, actor, note_id)
    note.voided = True
    note.voided_at = utcnow()
    note.void_reason = reason.strip()
    note.voided_by_id = actor.user_id
    session.flush()
    _audit(session, actor, "records.void_note", note)


def _view(
    cipher: FieldCipher,
    note: ClinicalNote,
    author_name: str,
    addenda: tuple[NoteView, ...] = (),
) -> NoteView:
    plaintext = cipher.decrypt_text(
        note.body_enc, table="clinical_notes", column="body", row_id=note.id
    )
    soap, shown = parse_body(plaintext, is_soap=note.is_soap)
    return NoteView(
        id=note.id,
        patient_id=note.patient_id,
        encounter_id=note.encounter_id,
        author_id=note.author_id,
        author_name=author_name,
        note_type=note.note_type,
        title=note.title,
        status=note.status,
        soap=soap,
        text=shown,
        written_at=note.written_at,
        signed_at=note.signed_at,
        amends_id=note.amends_id,
        addenda=addenda,
    )


@requires(Privilege.VIEW_CLINICAL)
def list_notes(*, session: Session, actor: Actor, patient_id: int) -> list[NoteView]:
    """A patient's notes, newest first, each with its addenda; drafts only to their author."""
    clinical_access(session, actor, patient_id)
    rows = session.execute(
        select(ClinicalNote, User.display_name)
        .outerjoin(User, User.id == ClinicalNote.author_id)
        .where(ClinicalNote.patient_id == patient_id, ClinicalNote.voided.is_(False))
        .where((ClinicalNote.status == "signed") | (ClinicalNote.author_id == actor.user_id))
        .order_by(ClinicalNote.written_at.desc(), ClinicalNote.id.desc())
    ).all()
    cipher = load_cipher(session) if rows else None
    addenda: dict[int, list[NoteView]] = {}
    tops: list[tuple[ClinicalNote, str]] = []
    for note, author in rows:
        if note.amends_id is None:
            tops.append((note, author or ""))
        else:
            assert cipher is not None
            addenda.setdefault(note.amends_id, []).append(_view(cipher, note, author or ""))
    views = []
    for note, author in tops:
        assert cipher is not None
        under = tuple(sorted(addenda.get(note.id, []), key=lambda a: (a.written_at, a.id)))
        views.append(_view(cipher, note, author, under))
    audit.record(
        session,
        actor,
        "records.view_notes",
        patient_id=patient_id,
        object_type="clinical_note",
        detail={"rows": len(rows)},
    )
    return views
