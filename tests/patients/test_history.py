"""A patient's own history, and editing only what the user changed (masked for nurses)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import factories
from cims.patients.duplicates import merge_patients, undo_merge
from cims.patients.editing import changed_fields, get_edit_form, save_changes
from cims.patients.history import list_patient_changes
from cims.patients.models import PatientChange
from cims.patients.resident_id import check_digit
from cims.patients.schemas import InvalidPatient, PatientInput
from cims.patients.service import PatientView, get_patient, register_patient, void_patient
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied, Actor

TODAY = dt.date(2026, 11, 26)
NATIONAL_ID = "110101198503121" + "23"
NATIONAL_ID += check_digit(NATIONAL_ID)


def registered(session: Session, actor: Actor, **changes: Any) -> PatientView:
    values: dict[str, Any] = {
        "family_name": "王",
        "given_name": "小明",
        "sex": "M",
        "birth_date": dt.date(1985, 3, 12),
        "national_id": NATIONAL_ID,
        "mobile": "13912345678",
        "address": "北京市东城区东华门街道1号",
        "emergency_contact_name": "王大明",
        "emergency_contact_relation": "father",
        "emergency_contact_phone": "13700001111",
        "insurance_type": "urban_employee",
        "insurance_number": "ZG123456789012",
        "blood_type": "A+",
    }
    confirm = bool(changes.pop("confirm", False))
    values.update(changes)
    return register_patient(
        session=session,
        actor=actor,
        data=PatientInput(**values),
        confirm_not_duplicate=confirm,
        today=TODAY,
    )


@pytest.fixture
def registrar(session: Session) -> Actor:
    return factories.actor(session, "registrar")


def test_an_edit_shows_who_when_which_fields_and_only_plain_old_values(
    session: Session, registrar: Actor
) -> None:
    patient = registered(session, registrar)
    save_changes(
        session=session,
        actor=registrar,
        patient_id=patient.id,
        changes={"given_name": "晓明", "mobile": "13655512468", "address": "上海市"},
        reason="typo at the desk",
        today=TODAY,
    )
    history = list_patient_changes(session=session, actor=registrar, patient_id=patient.id)
    # One test transaction: now() (the change) precedes the registration's clock time.
    assert sorted(e.event for e in history) == ["change", "register"]
    [change] = [e for e in history if e.event == "change"]
    assert set(change.fields) == {"given_name", "mobile", "address"}
    assert change.before == {"given_name": "小明"}  # sensitive fields: the name only
    assert change.by == registrar.display_name and change.reason == "typo at the desk"
    assert change.at.utcoffset() is not None  # local, zone-aware
    shown = repr(history)
    for secret in ("13912345678", "13655512468", "北京市", "上海市", NATIONAL_ID):
        assert secret not in shown
    [event] = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patients.view_history")
    )
    assert event.patient_id == patient.id


def test_merges_undo_and_void_appear_in_the_history(session: Session, registrar: Actor) -> None:
    survivor = registered(session, registrar)
    second_id = "11010119850312125"
    other = registered(
        session,
        registrar,
        national_id=second_id + check_digit(second_id),
        mobile="",
        given_name="晓明",
        confirm=True,
    )
    merge = merge_patients(
        session=session,
        actor=registrar,
        survivor_id=survivor.id,
        merged_id=other.id,
        reason="same person",
    )
    undo_merge(session=session, actor=registrar, merge_id=merge.id)
    void_patient(session=session, actor=registrar, patient_id=other.id, reason="entered twice")
    events = {
        e.event: e
        for e in list_patient_changes(session=session, actor=registrar, patient_id=other.id)
    }
    assert set(events) == {"register", "merged_into", "merge_undone", "void"}
    assert events["merged_into"].other_mrn == survivor.mrn
    assert events["merged_into"].reason == "same person"
    assert events["void"].reason == "entered twice"
    kept = list_patient_changes(session=session, actor=registrar, patient_id=survivor.id)
    assert {e.event for e in kept} == {"register", "merged_in", "merge_undone"}


def test_history_of_a_missing_patient_is_refused(session: Session, registrar: Actor) -> None:
    with pytest.raises(InvalidPatient) as refused:
        list_patient_changes(session=session, actor=registrar, patient_id=0)
    assert refused.value.problems == ["patient.not_found"]


def test_a_nurse_edits_with_masked_fields_kept_unchanged(
    session: Session, registrar: Actor
) -> None:
    patient = registered(session, registrar)
    nurse = factories.actor(session, "nurse")
    form = get_edit_form(session=session, actor=nurse, patient_id=patient.id)
    assert form.values.mobile == "139****5678" and "national_id" in form.masked
    assert NATIONAL_ID not in repr(form)
    submitted = form.values.model_dump() | {"blood_type": "B+"}
    changes = changed_fields(form.values, submitted)
    assert changes == {"blood_type": "B+"}  # masked values sent back unchanged are no change
    save_changes(session=session, actor=nurse, patient_id=patient.id, changes=changes, today=TODAY)
    full = get_patient(session=session, actor=registrar, patient_id=patient.id)
    assert (full.blood_type, full.phone, full.national_id) == ("B+", "13912345678", NATIONAL_ID)


def test_a_registrar_sees_the_form_in_full(session: Session, registrar: Actor) -> None:
    patient = registered(session, registrar)
    form = get_edit_form(session=session, actor=registrar, patient_id=patient.id)
    assert form.masked == frozenset() and form.values.national_id == NATIONAL_ID
    assert (form.values.family_name, form.values.given_name) == ("王", "小明")
    assert form.values.emergency_contact_phone == "13700001111"


def test_an_unnamed_emergency_record_keeps_its_label_when_edited(
    session: Session, registrar: Actor
) -> None:
    unknown = register_patient(
        session=session, actor=registrar, data=PatientInput(is_unidentified=True), today=TODAY
    )
    form = get_edit_form(session=session, actor=registrar, patient_id=unknown.id)
    assert form.values.family_name == ""
    view = save_changes(
        session=session,
        actor=registrar,
        patient_id=unknown.id,
        changes={"sex": "F"},
        today=TODAY,
    )
    assert view.full_name == unknown.temporary_label and view.sex == "F"


def test_a_bad_edit_changes_nothing(session: Session, registrar: Actor) -> None:
    patient = registered(session, registrar)
    with pytest.raises(InvalidPatient) as refused:
        save_changes(
            session=session,
            actor=registrar,
            patient_id=patient.id,
            changes={"mobile": "12345", "birth_date": dt.date(2030, 1, 1)},
            today=TODAY,
        )
    assert "patient.mobile_format" in refused.value.problems
    assert "patient.birth_date_future" in refused.value.problems
    changes = session.scalars(
        select(PatientChange).where(PatientChange.patient_id == patient.id)
    ).all()
    assert changes == []


@pytest.mark.parametrize("role", ["doctor", "finance"])
def test_roles_without_edit_privilege_are_refused(
    session: Session, registrar: Actor, role: str
) -> None:
    patient = registered(session, registrar)
    actor = factories.actor(session, role)
    with pytest.raises(AccessDenied):
        get_edit_form(session=session, actor=actor, patient_id=patient.id)
    with pytest.raises(AccessDenied):
        save_changes(
            session=session, actor=actor, patient_id=patient.id, changes={"blood_type": "B+"}
        )
