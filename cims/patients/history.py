"""A patient record's own history: registration, demographic edits, merges, voiding.

Edits show which fields changed and the previous plain values of non-sensitive fields
only; encrypted fields (ID, mobile, address, ...) show their name, never a value.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, or_, select
from sqlalchemy.orm import Session, aliased

from cims.clock import to_local
from cims.patients.models import Patient, PatientChange, PatientMerge
from cims.patients.schemas import InvalidPatient
from cims.patients.service import SENSITIVE_FIELDS
from cims.security import audit
from cims.security.models import User
from cims.security.rbac import Actor, Privilege, requires

EVENTS = ("register", "change", "void", "merged_in", "merged_into", "merge_undone")


@dataclass(frozen=True)
class HistoryEntry:
    """One event in a record's life; ``at`` is local time, ``by`` a display name."""

    at: dt.datetime
    event: str  # one of EVENTS
    by: str
    fields: tuple[str, ...] = ()
    before: dict[str, str] = field(default_factory=dict)  # non-sensitive fields only
    reason: str = ""
    other_mrn: str = ""  # the other record of a merge


def _names(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.display_name).where(User.id.in_(wanted)))
    return {int(uid): name for uid, name in rows}


def _plain(value: Any) -> str:
    return "" if value is None else str(value)


def _local(moment: dt.datetime) -> dt.datetime:
    local = to_local(moment)
    assert local is not None
    return local


def _merge_entries(
    session: Session, patient: Patient
) -> list[tuple[dt.datetime, str, int | None, str, str]]:
    """(time, event, user id, reason, other MRN) for each merge touching the record."""
    other = aliased(Patient)
    rows = session.execute(
        select(PatientMerge, other.mrn)
        .join(
            other,
            other.id
            == case(
                (PatientMerge.survivor_id == patient.id, PatientMerge.merged_id),
                else_=PatientMerge.survivor_id,
            ),
        )
        .where(or_(PatientMerge.survivor_id == patient.id, PatientMerge.merged_id == patient.id))
        .order_by(PatientMerge.id)
    )
    found = []
    for merge, other_mrn in rows:
        event = "merged_in" if merge.survivor_id == patient.id else "merged_into"
        found.append((merge.merged_at, event, merge.merged_by_id, merge.reason or "", other_mrn))
        if merge.undone_at is not None:
            found.append((merge.undone_at, "merge_undone", merge.undone_by_id, "", other_mrn))
    return found


@requires(Privilege.VIEW_PATIENTS)
def list_patient_changes(*, session: Session, actor: Actor, patient_id: int) -> list[HistoryEntry]:
    """Who registered, changed, merged or voided this record, and when; newest first."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise InvalidPatient(["patient.not_found"])
    changes = list(
        session.scalars(
            select(PatientChange)
            .where(PatientChange.patient_id == patient.id)
            .order_by(PatientChange.changed_at, PatientChange.id)
        )
    )
    merges = _merge_entries(session, patient)
    names = _names(
        session,
        {patient.created_by_id, patient.voided_by_id}
        | {c.changed_by_id for c in changes}
        | {m[2] for m in merges},
    )
    entries = [
        HistoryEntry(
            at=_local(patient.registered_at),
            event="register",
            by=names.get(patient.created_by_id or 0, ""),
        )
    ]
    for change in changes:
        before = change.before or {}
        entries.append(
            HistoryEntry(
                at=_local(change.changed_at),
                event="change",
                by=names.get(change.changed_by_id or 0, ""),
                fields=tuple(str(f) for f in change.fields),
                before={
                    str(name): _plain(value)
                    for name, value in before.items()
                    if name not in SENSITIVE_FIELDS
                },
                reason=change.reason or "",
            )
        )
    for at, event, by_id, reason, other_mrn in merges:
        entries.append(
            HistoryEntry(
                at=_local(at),
                event=event,
                by=names.get(by_id or 0, ""),
                reason=reason,
                other_mrn=other_mrn,
            )
        )
    if patient.voided and patient.voided_at is not None:
        entries.append(
            HistoryEntry(
                at=_local(patient.voided_at),
                event="void",
                by=names.get(patient.voided_by_id or 0, ""),
                reason=patient.void_reason or "",
            )
        )
    entries.sort(key=lambda e: e.at, reverse=True)
    audit.record(
        session,
        actor,
        "patients.view_history",
        patient_id=patient.id,
        object_type="patient",
        object_id=patient.id,
        detail={"entries": len(entries)},
    )
    return entries
