"""Finding likely duplicate patients, merging them, and undoing a merge exactly.

A merge moves every row that points at the duplicate (every foreign key to ``patients.id``
found in the schema, so tables added later are covered) to the survivor and records the
moved ids, so an undo moves back exactly those rows and nothing the survivor gained since.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from rapidfuzz import fuzz
from sqlalchemy import Column, Table, or_, select, update
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.patients.models import Patient, PatientMerge
from cims.patients.schemas import InvalidPatient
from cims.security import audit
from cims.security.rbac import Actor, Privilege, requires

# Weights of the three signals; they sum to 1 so a score reads as a fraction.
_NAME_WEIGHT: Final = 0.4
_BIRTH_WEIGHT: Final = 0.3
_PHONE_WEIGHT: Final = 0.3
WARN_SCORE: Final = 0.65  # name alike plus birth date or phone: worth a registrar's look
_MIN_NAME_SIMILARITY: Final = 60.0
# History of the patient as such stays put; a login account is a person, not clinical data
# (and users.patient_id is unique, so the survivor may already have one).
_NOT_MOVED: Final = frozenset({"patient_changes", "patient_merges", "users", "audit_log"})


@dataclass(frozen=True)
class DuplicateCandidate:
    """An existing patient who may be the same person, with why and how likely."""

    patient_id: int
    mrn: str
    full_name: str
    sex: str
    birth_date: dt.date | None
    score: float  # 0..1
    reasons: tuple[str, ...]  # "name", "birth_date", "phone"


def score_pair(
    name_a: str, name_b: str, *, same_birth_date: bool, same_phone: bool
) -> tuple[float, tuple[str, ...]] | None:
    """How alike two records are (0..1) and why; None when only a birthday is shared."""
    similarity = fuzz.ratio(name_a, name_b)
    reasons = []
    score = 0.0
    if similarity >= _MIN_NAME_SIMILARITY:
        reasons.append("name")
        score += _NAME_WEIGHT * similarity / 100
    if same_birth_date:
        reasons.append("birth_date")
        score += _BIRTH_WEIGHT
    if same_phone:
        reasons.append("phone")
        score += _PHONE_WEIGHT
    if "name" not in reasons and "phone" not in reasons:
        return None  # a shared birthday alone says nothing
    return round(score, 3), tuple(reasons)


def score_candidates(
    session: Session,
    *,
    full_name: str,
    birth_date: dt.date | None,
    phone_bidx: bytes | None,
    exclude_id: int | None = None,
    limit: int = 10,
) -> list[DuplicateCandidate]:
    """Live patients sharing the phone, the birth date or the exact name, best first."""
    matches = [Patient.full_name == full_name]
    if phone_bidx is not None:
        matches.append(Patient.phone_bidx == phone_bidx)
    if birth_date is not None:
        matches.append(Patient.birth_date == birth_date)
    query = select(Patient).where(
        or_(*matches), Patient.voided.is_(False), Patient.merged_into_id.is_(None)
    )
    if exclude_id is not None:
        query = query.where(Patient.id != exclude_id)
    scored = []
    for row in session.execute(query.limit(500)).scalars():
        found = score_pair(
            full_name,
            row.full_name,
            same_birth_date=birth_date is not None and row.birth_date == birth_date,
            same_phone=phone_bidx is not None and row.phone_bidx == phone_bidx,
        )
        if found is None:
            continue
        score, reasons = found
        scored.append(
            DuplicateCandidate(
                patient_id=row.id,
                mrn=row.mrn,
                full_name=row.full_name,
                sex=row.sex,
                birth_date=row.birth_date,
                score=score,
                reasons=reasons,
            )
        )
    scored.sort(key=lambda c: (-c.score, c.mrn))
    return scored[:limit]


@requires(Privilege.MERGE_PATIENTS)
def find_duplicates(
    *, session: Session, actor: Actor, patient_id: int, limit: int = 10
) -> list[DuplicateCandidate]:
    """Likely duplicates of an existing patient, best first (audited)."""
    patient = _live_or_raise(session, patient_id)
    found = score_candidates(
        session,
        full_name=patient.full_name,
        birth_date=patient.birth_date,
        phone_bidx=patient.phone_bidx,
        exclude_id=patient.id,
        limit=limit,
    )
    audit.record(
        session,
        actor,
        "patients.find_duplicates",
        patient_id=patient.id,
        object_type="patient",
        object_id=patient.id,
        detail={"candidates": len(found)},
    )
    return found


def patient_references() -> list[Column[int]]:
    """Every column that points at ``patients.id`` and moves with a merge."""
    from cims.schema import metadata

    columns: list[Column[int]] = []
    for table in metadata.sorted_tables:
        if table.name in _NOT_MOVED:
            continue
        for key in table.foreign_keys:
            if key.column.table.name != "patients":
                continue
            if table.name == "patients" and key.parent.name == "merged_into_id":
                continue  # the merge marker itself
            columns.append(key.parent)
    return columns


def _reference_key(column: Column[int]) -> str:
    table = column.table
    return f"{table.name}.{column.name}" if isinstance(table, Table) else column.name


def _live_or_raise(session: Session, patient_id: int) -> Patient:
    patient = session.get(Patient, patient_id, with_for_update=True)
    if patient is None:
        raise InvalidPatient(["patient.not_found"])
    if patient.voided or patient.merged_into_id is not None:
        raise InvalidPatient(["patient.not_live"])
    return patient


def _merge(
    session: Session, actor: Actor, survivor_id: int, merged_id: int, reason: str, action: str
) -> PatientMerge:
    if survivor_id == merged_id:
        raise InvalidPatient(["patient.merge_same"])
    if not reason.strip():
        raise InvalidPatient(["patient.reason_required"])
    # Lock both rows in id order so two merges of the same pair cannot deadlock.
    first, second = sorted((survivor_id, merged_id))
    locked = {pid: _live_or_raise(session, pid) for pid in (first, second)}
    survivor, merged = locked[survivor_id], locked[merged_id]
    moved: dict[str, list[int]] = {}
    for column in patient_references():
        table = column.table
        statement = update(table).where(column == merged.id)
        if table.name == "patients":
            statement = statement.where(table.c.id != survivor.id)  # never its own mother
        statement = statement.values({column.name: survivor.id}).returning(table.c.id)
        ids = sorted(session.execute(statement).scalars())
        if ids:
            moved[_reference_key(column)] = ids
    now = utcnow()
    merged.merged_into_id = survivor.id
    merged.merged_at = now
    merged.updated_by_id = actor.user_id
    record = PatientMerge(
        survivor_id=survivor.id,
        merged_id=merged.id,
        merged_by_id=actor.user_id,
        reason=reason.strip(),
        moved=moved,
    )
    session.add(record)
    session.flush()
    detail = {"merge_id": record.id, "rows": {k: len(v) for k, v in moved.items()}}
    for pid in (survivor.id, merged.id):
        audit.record(
            session,
            actor,
            action,
            patient_id=pid,
            object_type="patient_merge",
            object_id=record.id,
            detail=detail,
        )
    return record


@requires(Privilege.MERGE_PATIENTS)
def merge_patients(
    *, session: Session, actor: Actor, survivor_id: int, merged_id: int, reason: str
) -> PatientMerge:
    """Move everything of ``merged_id`` onto ``survivor_id`` and mark it merged (undoable)."""
    return _merge(session, actor, survivor_id, merged_id, reason, "patients.merge")


@requires(Privilege.MERGE_PATIENTS)
def identify_unidentified(
    *, session: Session, actor: Actor, temporary_id: int, patient_id: int
) -> PatientMerge:
    """An unidentified emergency record turned out to be ``patient_id``: merge it in."""
    temporary = session.get(Patient, temporary_id)
    if temporary is None or not temporary.is_unidentified:
        raise InvalidPatient(["patient.not_unidentified"])
    return _merge(
        session, actor, patient_id, temporary_id, "identified", "patients.identify_unidentified"
    )


@requires(Privilege.MERGE_PATIENTS)
def undo_merge(
    *, session: Session, actor: Actor, merge_id: int, reason: str | None = None
) -> PatientMerge:
    """Move exactly the rows a merge moved back to the merged record and revive it."""
    record = session.get(PatientMerge, merge_id, with_for_update=True)
    if record is None:
        raise InvalidPatient(["patient.merge_not_found"])
    if record.undone_at is not None:
        raise InvalidPatient(["patient.merge_already_undone"])
    merged = session.get(Patient, record.merged_id, with_for_update=True)
    assert merged is not None  # foreign key
    columns = {_reference_key(c): c for c in patient_references()}
    for key, ids in record.moved.items():
        column = columns[key]
        table = column.table
        session.execute(
            update(table)
            .where(table.c.id.in_(ids), column == record.survivor_id)
            .values({column.name: record.merged_id})
        )
    merged.merged_into_id = None
    merged.merged_at = None
    merged.updated_by_id = actor.user_id
    record.undone_at = utcnow()
    record.undone_by_id = actor.user_id
    record.undo_reason = (reason or "").strip() or None
    session.flush()
    for pid in (record.survivor_id, record.merged_id):
        audit.record(
            session,
            actor,
            "patients.undo_merge",
            patient_id=pid,
            object_type="patient_merge",
            object_id=record.id,
        )
    return record
