"""The registrar's duplicate review: likely duplicate pairs hospital-wide, recent merges.

Pairs are found by blocking in SQL (self-joins on the indexed phone blind index and birth
date), so only the few candidate pairs are scored in Python, with the same weights as the
registration-time check (``duplicates.score_pair``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from cims.clock import to_local
from cims.patients.duplicates import score_pair
from cims.patients.models import Patient, PatientDistinctPair, PatientMerge
from cims.patients.resident_id import mask_mobile
from cims.patients.service import mask_document
from cims.records.models import Encounter
from cims.security import audit
from cims.security.crypto import FieldCipher, load_cipher
from cims.security.models import User
from cims.security.rbac import Actor, Privilege, requires

# Name alike plus one more signal (birth date or phone): worth a look in the queue.
QUEUE_MIN_SCORE: Final = 0.5
_MAX_CANDIDATE_PAIRS: Final = 5000  # per blocking key; bounds the Python scoring


@dataclass(frozen=True)
class PairSide:
    """One record of a pair, masked for every role (the queue is a hospital-wide list)."""

    patient_id: int
    mrn: str
    full_name: str
    sex: str
    birth_date: dt.date | None
    national_id: str
    phone: str
    registered_at: dt.datetime | None  # local time
    encounters: int


@dataclass(frozen=True)
class DuplicatePair:
    """Two live records that may be the same person, with how likely and why."""

    first: PairSide  # the earlier registration
    second: PairSide
    score: float  # 0..1
    reasons: tuple[str, ...]  # "name", "birth_date", "phone"


@dataclass(frozen=True)
class MergeRow:
    """One merge for the undo list (times local)."""

    merge_id: int
    merged_at: dt.datetime | None
    survivor_id: int
    survivor_mrn: str
    survivor_name: str
    merged_id: int
    merged_mrn: str
    merged_name: str
    merged_by: str
    reason: str
    undone_at: dt.datetime | None
    undone_by: str


@dataclass(frozen=True)
class UnidentifiedPatient:
    """A live emergency record still known only by its temporary label."""

    patient_id: int
    mrn: str
    temporary_label: str
    sex: str
    registered_at: dt.datetime | None  # local time


def _live(*patients: type[Patient]) -> list[object]:
    conditions: list[object] = []
    for p in patients:
        conditions += [p.voided.is_(False), p.merged_into_id.is_(None)]
    return conditions


def _candidate_pairs(session: Session) -> set[tuple[int, int]]:
    """Id pairs (low, high) sharing a phone, or a birth date and part of the name."""
    a, b = aliased(Patient), aliased(Patient)
    not_family = and_(
        or_(a.mother_id.is_(None), a.mother_id != b.id),
        or_(b.mother_id.is_(None), b.mother_id != a.id),
    )  # a newborn is registered with the mother's phone: not a duplicate
    base = select(a.id, b.id).where(a.id < b.id, not_family, *_live(a, b))  # type: ignore[arg-type]
    by_phone = base.where(a.phone_bidx.is_not(None), a.phone_bidx == b.phone_bidx)
    by_birth = base.where(
        a.birth_date.is_not(None),
        a.birth_date == b.birth_date,
        or_(
            a.family_name == b.family_name,
            a.given_name == b.given_name,
            a.name_initials == b.name_initials,
        ),
    )
    pairs: set[tuple[int, int]] = set()
    for query in (by_phone, by_birth):
        rows = session.execute(query.limit(_MAX_CANDIDATE_PAIRS))
        pairs.update((int(low), int(high)) for low, high in rows)
    decided = session.execute(select(PatientDistinctPair.low_id, PatientDistinctPair.high_id))
    return pairs - {(int(low), int(high)) for low, high in decided}


def _encounter_counts(session: Session, ids: Iterable[int]) -> dict[int, int]:
    rows = session.execute(
        select(Encounter.patient_id, func.count())
        .where(Encounter.patient_id.in_(list(ids)), Encounter.voided.is_(False))
        .group_by(Encounter.patient_id)
    )
    return {int(pid): int(count) for pid, count in rows}


def _side(cipher: FieldCipher, patient: Patient, encounters: int) -> PairSide:
    def plain(column: str, blob: bytes | None) -> str:
        return cipher.decrypt_text(blob, table="patients", column=column, row_id=patient.id)

    phone = plain("phone", patient.phone_enc)
    return PairSide(
        patient_id=patient.id,
        mrn=patient.mrn,
        full_name=patient.full_name,
        sex=patient.sex,
        birth_date=patient.birth_date,
        national_id=mask_document(plain("national_id", patient.national_id_enc), patient.id_type),
        phone=mask_mobile(phone) if phone else "",
        registered_at=to_local(patient.registered_at),
        encounters=encounters,
    )


@requires(Privilege.MERGE_PATIENTS)
def list_duplicate_pairs(*, session: Session, actor: Actor, limit: int = 50) -> list[DuplicatePair]:
    """Likely duplicate pairs among live patients, best first (masked; audited)."""
    candidates = _candidate_pairs(session)
    ids = {pid for pair in candidates for pid in pair}
    patients = (
        {p.id: p for p in session.scalars(select(Patient).where(Patient.id.in_(ids)))}
        if ids
        else {}
    )
    scored: list[tuple[float, tuple[str, ...], Patient, Patient]] = []
    for low, high in candidates:
        first, second = patients[low], patients[high]
        found = score_pair(
            first.full_name,
            second.full_name,
            same_birth_date=first.birth_date is not None and first.birth_date == second.birth_date,
            same_phone=first.phone_bidx is not None and first.phone_bidx == second.phone_bidx,
        )
        if found is not None and found[0] >= QUEUE_MIN_SCORE:
            scored.append((found[0], found[1], first, second))
    scored.sort(key=lambda row: (-row[0], row[2].mrn, row[3].mrn))
    scored = scored[:limit]
    counts = _encounter_counts(session, {p.id for row in scored for p in row[2:]})
    cipher = load_cipher(session)
    pairs = [
        DuplicatePair(
            first=_side(cipher, first, counts.get(first.id, 0)),
            second=_side(cipher, second, counts.get(second.id, 0)),
            score=score,
            reasons=reasons,
        )
        for score, reasons, first, second in scored
    ]
    audit.record(
        session,
        actor,
        "patients.review_duplicates",
        object_type="patient_duplicates",
        detail={"pairs": len(pairs)},
    )
    return pairs


@requires(Privilege.MERGE_PATIENTS)
def list_recent_merges(*, session: Session, actor: Actor, limit: int = 20) -> list[MergeRow]:
    """The latest merges (undone ones included, marked), newest first (audited)."""
    survivor, merged = aliased(Patient), aliased(Patient)
    by, undoer = aliased(User), aliased(User)
    rows = session.execute(
        select(PatientMerge, survivor, merged, by.display_name, undoer.display_name)
        .join(survivor, survivor.id == PatientMerge.survivor_id)
        .join(merged, merged.id == PatientMerge.merged_id)
        .outerjoin(by, by.id == PatientMerge.merged_by_id)
        .outerjoin(undoer, undoer.id == PatientMerge.undone_by_id)
        .order_by(PatientMerge.merged_at.desc(), PatientMerge.id.desc())
        .limit(limit)
    )
    merges = [
        MergeRow(
            merge_id=record.id,
            merged_at=to_local(record.merged_at),
            survivor_id=kept.id,
            survivor_mrn=kept.mrn,
            survivor_name=kept.full_name,
            merged_id=gone.id,
            merged_mrn=gone.mrn,
            merged_name=gone.temporary_label or gone.full_name,
            merged_by=merged_by or "",
            reason=record.reason or "",
            undone_at=to_local(record.undone_at),
            undone_by=undone_by or "",
        )
        for record, kept, gone, merged_by, undone_by in rows
    ]
    audit.record(
        session,
        actor,
        "patients.list_merges",
        object_type="patient_merge",
        detail={"merges": len(merges)},
    )
    return merges


@requires(Privilege.MERGE_PATIENTS)
def list_unidentified(
    *, session: Session, actor: Actor, limit: int = 50
) -> list[UnidentifiedPatient]:
    """Live unidentified emergency records, newest first, to be identified (audited)."""
    rows = session.scalars(
        select(Patient)
        .where(Patient.is_unidentified.is_(True), *_live(Patient))  # type: ignore[arg-type]
        .order_by(Patient.registered_at.desc(), Patient.id.desc())
        .limit(limit)
    )
    found = [
        UnidentifiedPatient(
            patient_id=p.id,
            mrn=p.mrn,
            temporary_label=p.temporary_label or p.full_name,
            sex=p.sex,
            registered_at=to_local(p.registered_at),
        )
        for p in rows
    ]
    audit.record(
        session,
        actor,
        "patients.list_unidentified",
        object_type="patient",
        detail={"patients": len(found)},
    )
    return found


class InvalidDecision(ValueError):
    """A not-a-duplicate decision that cannot be recorded (message key)."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)


@requires(Privilege.MERGE_PATIENTS)
def mark_not_duplicate(
    *, session: Session, actor: Actor, first_id: int, second_id: int, reason: str = ""
) -> PatientDistinctPair:
    """Record that two look-alike records are different people; the queue stops listing them."""
    if first_id == second_id:
        raise InvalidDecision("patient_dups.same_record")
    low, high = sorted((first_id, second_id))
    if session.get(Patient, low) is None or session.get(Patient, high) is None:
        raise InvalidDecision("patient_dups.not_found")
    existing = session.scalar(
        select(PatientDistinctPair).where(
            PatientDistinctPair.low_id == low, PatientDistinctPair.high_id == high
        )
    )
    if existing is not None:
        return existing
    decision = PatientDistinctPair(
        low_id=low, high_id=high, decided_by_id=actor.user_id, reason=reason.strip() or None
    )
    session.add(decision)
    session.flush()
    for pid in (low, high):
        audit.record(
            session,
            actor,
            "patients.mark_not_duplicate",
            patient_id=pid,
            object_type="patient_distinct_pair",
            object_id=decision.id,
        )
    return decision
