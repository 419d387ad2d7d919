"""SOAP notes: draft, edit, sign by the author only, addenda after signing, audit and access."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import factories
from cims.base import utcnow
from cims.patients.models import Patient
from cims.records import notes
from cims.records.models import ClinicalNote, Encounter
from cims.security.crypto import load_cipher
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied, Actor

SOAP = {
    "subjective": "口干多饮三月",
    "objective": "BMI 28，空腹血糖 9.1 mmol/L",
    "assessment": "2型糖尿病",
    "plan": "二甲双胍 0.5 g bid，一月后复诊",
}


def _ward(session: Session) -> tuple[Patient, Encounter, Actor, Actor]:
    """A patient with an open visit in a department with two doctors."""
    department = factories.department(session, "ENDO")
    author = factories.actor(session, "doctor", departments=(department.id,))
    colleague = factories.actor(session, "doctor", departments=(department.id,))
    patient = factories.patient(session)
    visit = Encounter(
        patient_id=patient.id,
        encounter_type="outpatient",
        department_id=department.id,
        attending_id=author.user_id,
        started_at=utcnow(),
    )
    session.add(visit)
    session.flush()
    return patient, visit, author, colleague


def _actions(session: Session, since: int) -> list[str]:
    return list(
        session.scalars(
            select(AuditEvent.action).where(AuditEvent.id > since).order_by(AuditEvent.id)
        )
    )


def _last_audit(session: Session) -> int:
    return session.scalar(select(func.max(AuditEvent.id))) or 0


def _note_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ClinicalNote)) or 0


def _draft(session: Session, patient: Patient, author: Actor, **extra: object) -> notes.NoteView:
    return notes.write_note(
        session=session, actor=author, patient_id=patient.id, title="门诊病历", **SOAP, **extra
    )


def test_draft_edit_sign_lifecycle(session: Session) -> None:
    patient, visit, author, _ = _ward(session)
    before = _last_audit(session)
    draft = _draft(session, patient, author, encounter_id=visit.id)
    assert draft.status == "draft" and draft.soap == notes.Soap(**SOAP)
    row = session.get(ClinicalNote, draft.id)
    assert row is not None and row.is_soap and row.signed_at is None
    assert "口干多饮".encode() not in row.body_enc  # stored encrypted
    plain = load_cipher(session).decrypt_text(
        row.body_enc, table="clinical_notes", column="body", row_id=row.id
    )
    assert json.loads(plain) == SOAP

    edited = notes.update_draft(
        session=session,
        actor=author,
        note_id=draft.id,
        title="门诊病历（修订）",
        **{**SOAP, "plan": "二甲双胍 0.5 g tid"},
    )
    assert edited.soap is not None and edited.soap.plan == "二甲双胍 0.5 g tid"
    signed = notes.sign_note(session=session, actor=author, note_id=draft.id)
    assert signed.signed and signed.signed_at is not None
    assert (row.status, row.signed_by_id) == ("signed", author.user_id)
    assert _actions(session, before) == [
        "records.write_note",
        "records.update_note",
        "records.sign_note",
    ]


def test_a_signed_note_cannot_be_edited_signed_again_or_voided(session: Session) -> None:
    patient, _, author, _ = _ward(session)
    draft = _draft(session, patient, author)
    notes.sign_note(session=session, actor=author, note_id=draft.id)
    row = session.get(ClinicalNote, draft.id)
    assert row is not None
    body, before = row.body_enc, _last_audit(session)
    with pytest.raises(notes.InvalidNote) as refused:
        notes.update_draft(session=session, actor=author, note_id=draft.id, title="x", plan="y")
    assert refused.value.problems == ["notes.signed_is_final"]
    with pytest.raises(notes.InvalidNote):
        notes.sign_note(session=session, actor=author, note_id=draft.id)
    with pytest.raises(notes.InvalidNote):
        notes.void_draft(session=session, actor=author, note_id=draft.id, reason="wrong patient")
    session.refresh(row)
    assert (row.body_enc, row.title, row.voided) == (body, "门诊病历", False)
    assert _actions(session, before) == []


def test_only_the_author_edits_or_signs_a_draft(session: Session) -> None:
    patient, _, author, colleague = _ward(session)
    draft = _draft(session, patient, author)
    for attempt in (
        lambda: notes.sign_note(session=session, actor=colleague, note_id=draft.id),
        lambda: notes.update_draft(
            session=session, actor=colleague, note_id=draft.id, title="t", plan="p"
        ),
        lambda: notes.void_draft(session=session, actor=colleague, note_id=draft.id, reason="r"),
    ):
        with pytest.raises(notes.InvalidNote) as refused:
            attempt()
        assert refused.value.problems == ["notes.not_author"]
    row = session.get(ClinicalNote, draft.id)
    assert row is not None and row.status == "draft"


def test_addenda_link_to_the_signed_note_and_list_underneath(session: Session) -> None:
    patient, _, author, colleague = _ward(session)
    draft = _draft(session, patient, author)
    with pytest.raises(notes.InvalidNote) as refused:
        notes.add_addendum(session=session, actor=colleague, note_id=draft.id, text="补充")
    assert refused.value.problems == ["notes.addendum_needs_signed"]
    notes.sign_note(session=session, actor=author, note_id=draft.id)
    before = _last_audit(session)
    first = notes.add_addendum(
        session=session, actor=colleague, note_id=draft.id, text="复查：血糖 7.2"
    )
    # An addendum to an addendum still hangs under the original note.
    second = notes.add_addendum(session=session, actor=author, note_id=first.id, text="已告知")
    assert (first.amends_id, second.amends_id) == (draft.id, draft.id)
    assert first.signed and first.author_id == colleague.user_id
    row = session.get(ClinicalNote, first.id)
    assert row is not None and (row.status, row.signed_by_id) == ("signed", colleague.user_id)
    assert _actions(session, before) == ["records.add_addendum"] * 2

    [listed] = notes.list_notes(session=session, actor=colleague, patient_id=patient.id)
    assert listed.id == draft.id and listed.soap == notes.Soap(**SOAP)
    assert [a.text for a in listed.addenda] == ["复查：血糖 7.2", "已告知"]
    assert _actions(session, before)[-1] == "records.view_notes"


def test_drafts_are_listed_only_for_their_author(session: Session) -> None:
    patient, _, author, colleague = _ward(session)
    draft = _draft(session, patient, author)
    mine = notes.list_notes(session=session, actor=author, patient_id=patient.id)
    assert [n.id for n in mine] == [draft.id]
    assert notes.list_notes(session=session, actor=colleague, patient_id=patient.id) == []


def test_bad_input_is_refused_with_keys_and_writes_nothing(session: Session) -> None:
    patient, visit, author, _ = _ward(session)
    other = factories.patient(session)
    before_rows, before_audit = _note_count(session), _last_audit(session)
    with pytest.raises(notes.InvalidNote) as refused:
        notes.write_note(
            session=session,
            actor=author,
            patient_id=other.id,
            encounter_id=visit.id,
            title="  ",
            note_type="gossip",
        )
    assert refused.value.problems == [
        "notes.title_required",
        "notes.body_required",
        "notes.bad_type",
        "notes.encounter_mismatch",
    ]
    with pytest.raises(notes.InvalidNote):
        notes.add_addendum(session=session, actor=author, note_id=10**12, text="x")
    draft = _draft(session, patient, author)
    with pytest.raises(notes.InvalidNote) as refused:
        notes.void_draft(session=session, actor=author, note_id=draft.id, reason=" ")
    assert refused.value.problems == ["notes.reason_required"]
    assert _note_count(session) == before_rows + 1
    assert _actions(session, before_audit) == ["records.write_note"]


def test_void_a_draft_keeps_it_with_the_reason(session: Session) -> None:
    patient, _, author, _ = _ward(session)
    draft = _draft(session, patient, author)
    notes.void_draft(session=session, actor=author, note_id=draft.id, reason="写错患者")
    row = session.get(ClinicalNote, draft.id)
    assert row is not None and row.voided and row.void_reason == "写错患者"
    assert notes.list_notes(session=session, actor=author, patient_id=patient.id) == []


def test_outside_care_and_wrong_roles_are_refused(session: Session) -> None:
    patient, _, author, _ = _ward(session)
    stranger = factories.actor(session, "doctor")  # no department, no encounter
    nurse = factories.actor(session, "nurse")
    before_rows = _note_count(session)
    with pytest.raises(AccessDenied):
        _draft(session, patient, stranger)
    with pytest.raises(AccessDenied):
        notes.list_notes(session=session, actor=stranger, patient_id=patient.id)
    with pytest.raises(AccessDenied):
        _draft(session, patient, nurse)  # nurses read notes; they do not write them
    draft = _draft(session, patient, author)
    notes.sign_note(session=session, actor=author, note_id=draft.id)
    with pytest.raises(AccessDenied):
        notes.add_addendum(session=session, actor=stranger, note_id=draft.id, text="x")
    assert _note_count(session) == before_rows + 1


def test_parse_body_reads_plain_and_soap_bodies() -> None:
    assert notes.parse_body("主诉：头痛", is_soap=False) == (None, "主诉：头痛")
    soap, text = notes.parse_body(json.dumps({"assessment": "偏头痛"}), is_soap=True)
    assert soap == notes.Soap(assessment="偏头痛") and text == "偏头痛"
    assert notes.parse_body("not json", is_soap=True) == (None, "not json")


def test_summary_shows_soap_assessment_and_marks_addenda(session: Session) -> None:
    from cims.clock import local_today
    from cims.records.summary import build_summary

    patient, _, author, _ = _ward(session)
    draft = _draft(session, patient, author)
    notes.sign_note(session=session, actor=author, note_id=draft.id)
    extra = notes.add_addendum(session=session, actor=author, note_id=draft.id, text="补充：已复查")
    summary = build_summary(
        session=session, actor=author, patient_id=patient.id, today=local_today()
    )
    shown = {n.id: (n.first_line, n.status, n.amends_id) for n in summary.notes}
    assert shown[draft.id] == ("2型糖尿病", "signed", None)
    assert shown[extra.id] == ("补充：已复查", "signed", draft.id)
