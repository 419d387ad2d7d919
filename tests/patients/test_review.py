"""The hospital-wide duplicate review queue, recent merges and unidentified records."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import factories
from cims.patients.duplicates import identify_unidentified, merge_patients, undo_merge
from cims.patients.resident_id import check_digit
from cims.patients.review import (
    DuplicatePair,
    list_duplicate_pairs,
    list_recent_merges,
    list_unidentified,
)
from cims.patients.schemas import PatientInput
from cims.patients.service import PatientView, register_patient, void_patient
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied, Actor

TODAY = dt.date(2026, 11, 26)
_sequence = itertools.count(101, 2)  # odd: male


def person(session: Session, actor: Actor, family: str, given: str, **changes: Any) -> PatientView:
    """Register a valid patient (male, born 1985-03-12 unless ``changes`` say otherwise)."""
    born: dt.date = changes.pop("birth_date", dt.date(1985, 3, 12))
    female = changes.get("sex") == "F"
    serial = next(_sequence) % 1000 - (1 if female else 0)  # the sequence's parity is the sex
    first17 = "110101" + born.strftime("%Y%m%d") + f"{serial:03d}"
    values: dict[str, Any] = {
        "family_name": family,
        "given_name": given,
        "sex": "M",
        "birth_date": born,
        "national_id": first17 + check_digit(first17),
        "mobile": "",
        "insurance_type": "self_pay",
    }
    values.update(changes)
    return register_patient(
        session=session,
        actor=actor,
        data=PatientInput(**values),
        confirm_not_duplicate=True,
        today=TODAY,
    )


def pair_ids(pairs: list[DuplicatePair]) -> list[set[int]]:
    return [{p.first.patient_id, p.second.patient_id} for p in pairs]


@pytest.fixture
def registrar(session: Session) -> Actor:
    return factories.actor(session, "registrar")


@pytest.fixture
def planted(session: Session, registrar: Actor) -> dict[str, PatientView]:
    """A planted duplicate (typo'd name, same birth date and phone), a namesake pair, noise."""
    return {
        "original": person(session, registrar, "王", "小明", mobile="13912345678"),
        "duplicate": person(session, registrar, "王", "晓明", mobile="13912345678"),
        # Two different men who share a common name and birthday, not a phone.
        "namesake_a": person(
            session, registrar, "李", "伟", birth_date=dt.date(1970, 1, 1), mobile="13800000001"
        ),
        "namesake_b": person(
            session, registrar, "李", "伟", birth_date=dt.date(1970, 1, 1), mobile="13800000002"
        ),
        # Same name, different birthday and phone: not a candidate at all.
        "stranger": person(
            session, registrar, "李", "伟", birth_date=dt.date(1990, 6, 1), mobile="13800000003"
        ),
    }


def test_the_planted_duplicate_tops_the_queue_above_the_namesakes(
    session: Session, registrar: Actor, planted: dict[str, PatientView]
) -> None:
    pairs = list_duplicate_pairs(session=session, actor=registrar)
    ids = pair_ids(pairs)
    duplicate = {planted["original"].id, planted["duplicate"].id}
    namesakes = {planted["namesake_a"].id, planted["namesake_b"].id}
    assert duplicate in ids and namesakes in ids
    assert ids.index(duplicate) < ids.index(namesakes)
    top = pairs[ids.index(duplicate)]
    assert top.reasons == ("name", "birth_date", "phone") and top.score > 0.8
    assert top.first.patient_id == planted["original"].id  # earlier registration first
    assert all(planted["stranger"].id not in pair for pair in ids)
    assert [p.score for p in pairs] == sorted((p.score for p in pairs), reverse=True)


def test_the_queue_is_masked_even_for_a_registrar_and_audited(
    session: Session, registrar: Actor, planted: dict[str, PatientView]
) -> None:
    before = session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) or 0
    pairs = list_duplicate_pairs(session=session, actor=registrar)
    side = next(p for p in pairs if p.first.patient_id == planted["original"].id).first
    assert side.phone == "139****5678"
    assert "*" in side.national_id and side.national_id != planted["original"].national_id
    assert side.encounters == 0 and side.registered_at is not None
    assert side.registered_at.utcoffset() is not None
    [event] = session.scalars(select(AuditEvent).where(AuditEvent.id > before))
    assert event.action == "patients.review_duplicates"
    assert event.detail == {"pairs": len(pairs)}


def test_voided_and_merged_records_leave_the_queue(
    session: Session, registrar: Actor, planted: dict[str, PatientView]
) -> None:
    void_patient(
        session=session, actor=registrar, patient_id=planted["namesake_b"].id, reason="error"
    )
    merge_patients(
        session=session,
        actor=registrar,
        survivor_id=planted["original"].id,
        merged_id=planted["duplicate"].id,
        reason="same person",
    )
    ids = pair_ids(list_duplicate_pairs(session=session, actor=registrar))
    gone = {planted["duplicate"].id, planted["namesake_b"].id}
    assert all(not (pair & gone) for pair in ids)


def test_a_mother_and_her_newborn_sharing_a_phone_are_no_pair(
    session: Session, registrar: Actor
) -> None:
    mother = person(
        session,
        registrar,
        "赵",
        "敏",
        sex="F",
        birth_date=dt.date(1990, 4, 2),
        mobile="13655500011",
    )
    baby = register_patient(
        session=session,
        actor=registrar,
        data=PatientInput(
            family_name="赵",
            given_name="敏之子",
            sex="M",
            birth_date=dt.date(2026, 11, 1),
            mobile="13655500011",
            is_newborn=True,
            mother_mrn=mother.mrn,
        ),
        confirm_not_duplicate=True,
        today=TODAY,
    )
    ids = pair_ids(list_duplicate_pairs(session=session, actor=registrar))
    assert {mother.id, baby.id} not in ids


def test_recent_merges_list_undone_ones_marked(
    session: Session, registrar: Actor, planted: dict[str, PatientView]
) -> None:
    merge = merge_patients(
        session=session,
        actor=registrar,
        survivor_id=planted["original"].id,
        merged_id=planted["duplicate"].id,
        reason="same person",
    )
    [row] = list_recent_merges(session=session, actor=registrar)
    assert (row.merge_id, row.survivor_mrn, row.merged_mrn) == (
        merge.id,
        planted["original"].mrn,
        planted["duplicate"].mrn,
    )
    assert row.merged_by == registrar.display_name and row.reason == "same person"
    assert row.undone_at is None
    undo_merge(session=session, actor=registrar, merge_id=merge.id)
    [row] = list_recent_merges(session=session, actor=registrar)
    assert row.undone_at is not None and row.undone_by == registrar.display_name
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.action == "patients.list_merges")
    ).all()
    assert len(actions) == 2


def test_unidentified_records_are_listed_until_identified(
    session: Session, registrar: Actor, planted: dict[str, PatientView]
) -> None:
    unknown = register_patient(
        session=session,
        actor=registrar,
        data=PatientInput(is_unidentified=True),
        today=TODAY,
    )
    listed = list_unidentified(session=session, actor=registrar)
    assert unknown.id in [u.patient_id for u in listed]
    [row] = [u for u in listed if u.patient_id == unknown.id]
    assert row.temporary_label == unknown.temporary_label
    identify_unidentified(
        session=session,
        actor=registrar,
        temporary_id=unknown.id,
        patient_id=planted["original"].id,
    )
    listed = list_unidentified(session=session, actor=registrar)
    assert unknown.id not in [u.patient_id for u in listed]
    [merge] = list_recent_merges(session=session, actor=registrar)
    assert merge.merged_name == unknown.temporary_label and merge.reason == "identified"


@pytest.mark.parametrize("role", ["nurse", "doctor", "finance"])
def test_roles_without_merge_privilege_cannot_review(session: Session, role: str) -> None:
    actor = factories.actor(session, role)
    for function in (list_duplicate_pairs, list_recent_merges, list_unidentified):
        with pytest.raises(AccessDenied):
            function(session=session, actor=actor)


def test_a_pair_marked_not_a_duplicate_leaves_the_queue(
    session: Session, registrar: Actor, planted: dict[str, PatientView]
) -> None:
    from cims.patients.review import InvalidDecision, mark_not_duplicate

    twins = {planted["original"].id, planted["duplicate"].id}
    assert twins in pair_ids(list_duplicate_pairs(session=session, actor=registrar))
    first, second = sorted(twins, reverse=True)
    decision = mark_not_duplicate(
        session=session, actor=registrar, first_id=first, second_id=second, reason="twins"
    )
    assert (decision.low_id, decision.high_id) == (second, first)
    assert twins not in pair_ids(list_duplicate_pairs(session=session, actor=registrar))
    again = mark_not_duplicate(session=session, actor=registrar, first_id=second, second_id=first)
    assert again.id == decision.id  # deciding twice records one decision
    with pytest.raises(InvalidDecision):
        mark_not_duplicate(session=session, actor=registrar, first_id=first, second_id=first)


def test_undoing_a_merge_keeps_the_reason(
    session: Session, registrar: Actor, planted: dict[str, PatientView]
) -> None:
    merge = merge_patients(
        session=session,
        actor=registrar,
        survivor_id=planted["original"].id,
        merged_id=planted["duplicate"].id,
        reason="same person",
    )
    undone = undo_merge(
        session=session, actor=registrar, merge_id=merge.id, reason="different fathers' names"
    )
    assert undone.undo_reason == "different fathers' names"
