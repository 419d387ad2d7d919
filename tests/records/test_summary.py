"""The doctor's patient summary: every section from a known record, access and audit."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

import factories
from cims.base import utcnow
from cims.billing.models import Invoice
from cims.clock import local_today
from cims.governance.models import ModelVersion, RiskScore
from cims.patients.models import Patient
from cims.records.models import (
    Allergy,
    ClinicalNote,
    Diagnosis,
    Encounter,
    FollowUp,
    Observation,
    Prescription,
    Problem,
    TreatmentPlan,
)
from cims.records.narrative import narrative
from cims.records.summary import build_summary
from cims.security.care import open_break_glass
from cims.security.crypto import load_cipher
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied, Actor

HBA1C, CREA = "4548-4", "14682-9"


def _ago(days: int) -> dt.datetime:
    return utcnow() - dt.timedelta(days=days)


def _add(session: Session, *rows: Any) -> None:
    session.add_all(rows)
    session.flush()


def _lab(patient: Patient, code: str, name: str, value: str, days: int, flag: str) -> Observation:
    return Observation(
        patient_id=patient.id,
        code=code,
        name=name,
        value_num=Decimal(value),
        unit="%" if code == HBA1C else "µmol/L",
        ref_low=Decimal("4.0") if code == HBA1C else Decimal("57"),
        ref_high=Decimal("6.0") if code == HBA1C else Decimal("111"),
        abnormal_flag=flag,
        observed_at=_ago(days),
    )


def _record(session: Session) -> tuple[Patient, Actor, dict[str, Any]]:
    """A diabetic, hypertensive man known to the ENDO doctor, with one of everything."""
    endo = factories.department(session, "ENDO")
    card = factories.department(session, "CARD")
    doctor = factories.actor(session, "doctor", departments=(endo.id,))
    patient = factories.patient(session, birth_date=dt.date(1958, 3, 1), blood_type="A+")
    pid = patient.id
    visit = Encounter(
        patient_id=pid, encounter_type="outpatient", department_id=endo.id,
        started_at=_ago(3), ended_at=_ago(3), status="closed",
    )  # fmt: skip
    stay = Encounter(
        patient_id=pid, encounter_type="inpatient", department_id=card.id,
        started_at=_ago(60), ended_at=_ago(52), status="closed",
    )  # fmt: skip
    old_stay = Encounter(
        patient_id=pid, encounter_type="inpatient", department_id=card.id,
        started_at=_ago(500), ended_at=_ago(495), status="closed",
    )  # fmt: skip
    _add(session, visit, stay, old_stay)
    penicillin = Allergy(patient_id=pid, substance="青霉素 / Penicillin", noted_at=_ago(900))
    latex = Allergy(patient_id=pid, substance="乳胶 / Latex", status="refuted", noted_at=_ago(9))
    t2dm = Problem(
        patient_id=pid, code="E11.9", description="2型糖尿病 / Type 2 diabetes mellitus",
        onset_date=dt.date(2019, 4, 1),
    )  # fmt: skip
    htn = Problem(patient_id=pid, code="I10", description="原发性高血压 / Essential hypertension")
    healed = Problem(
        patient_id=pid, code="J18.9", description="肺炎 / Pneumonia", status="resolved"
    )
    old_a1c = _lab(patient, HBA1C, "糖化血红蛋白 / HbA1c", "7.4", 200, "H")
    new_a1c = _lab(patient, HBA1C, "糖化血红蛋白 / HbA1c", "9.1", 30, "H")
    crea = _lab(patient, CREA, "肌酐 / Creatinine", "98", 400, "N")
    metformin = Prescription(
        patient_id=pid, drug_code="METF", drug_name="二甲双胍片 / Metformin", dose=Decimal(500),
        dose_unit="mg", route="oral", frequency="bid", duration_days=30, quantity=Decimal(60),
        prescribed_at=_ago(3),
    )  # fmt: skip
    finished = Prescription(
        patient_id=pid, drug_code="AMOX", drug_name="阿莫西林胶囊 / Amoxicillin", dose=Decimal(500),
        dose_unit="mg", route="oral", frequency="tid", duration_days=7, quantity=Decimal(21),
        prescribed_at=_ago(90), status="completed",
    )  # fmt: skip
    diagnosis = Diagnosis(
        patient_id=pid, encounter_id=stay.id, code="I50.9", description="心力衰竭 / Heart failure",
        diagnosed_at=_ago(60),
    )  # fmt: skip
    plan = TreatmentPlan(patient_id=pid, title="糖尿病管理", start_date=local_today())
    owed = Invoice(
        invoice_no=f"INV-S-{pid}", patient_id=pid, status="issued", total_amount=Decimal(100),
        patient_amount=Decimal(100), paid_amount=Decimal(30),
    )  # fmt: skip
    settled = Invoice(
        invoice_no=f"INV-P-{pid}", patient_id=pid, status="paid", total_amount=Decimal(50),
        patient_amount=Decimal(50), paid_amount=Decimal(50),
    )  # fmt: skip
    _add(session, penicillin, latex, t2dm, htn, healed, old_a1c, new_a1c, crea)
    _add(session, metformin, finished, diagnosis, plan, owed, settled)
    today = local_today()
    missed = FollowUp(
        plan_id=plan.id, patient_id=pid, due_date=today - dt.timedelta(days=10), description="复查"
    )
    upcoming = FollowUp(
        plan_id=plan.id, patient_id=pid, due_date=today + dt.timedelta(days=20), description="随访"
    )
    done = FollowUp(
        plan_id=plan.id, patient_id=pid, due_date=today - dt.timedelta(days=40),
        description="已完成", status="done",
    )  # fmt: skip
    note = ClinicalNote(
        patient_id=pid, encounter_id=visit.id, title="门诊病历", body_enc=b"-", written_at=_ago(3)
    )
    model = ModelVersion(model_name="readmission_30d", version=1, features=[], metrics={})
    _add(session, missed, upcoming, done, note, model)
    note.body_enc = load_cipher(session).encrypt(
        "\n主诉：口干多饮。\n诊断：2型糖尿病。",
        table="clinical_notes",
        column="body",
        row_id=note.id,
    )
    risk = RiskScore(
        model_version_id=model.id, patient_id=pid, subject_type="encounter", subject_id=stay.id,
        score=Decimal("0.31"), factors=["3 admissions", "HbA1c 9.1"],
    )  # fmt: skip
    _add(session, risk)
    rows = {"stay": stay, "penicillin": penicillin, "t2dm": t2dm, "htn": htn, "missed": missed}
    rows |= {"new_a1c": new_a1c, "old_a1c": old_a1c, "metformin": metformin, "note": note}
    rows |= {"owed": owed, "risk": risk, "crea": crea}
    return patient, doctor, rows


def test_every_section_comes_from_the_record(session: Session) -> None:
    patient, doctor, rows = _record(session)
    s = build_summary(session=session, actor=doctor, patient_id=patient.id, today=local_today())
    assert s.basis == "care"
    assert (s.header.mrn, s.header.sex, s.header.blood_type) == (patient.mrn, "M", "A+")
    assert s.header.age == local_today().year - 1958 - (
        local_today() < dt.date(local_today().year, 3, 1)
    )
    assert [a.id for a in s.allergies] == [rows["penicillin"].id]
    assert [p.id for p in s.problems] == [rows["t2dm"].id, rows["htn"].id]
    assert [m.id for m in s.medications] == [rows["metformin"].id]
    a1c = next(lab for lab in s.labs if lab.code == HBA1C)
    assert [p.value for p in a1c.points] == [7.4, 9.1] and a1c.abnormal
    assert (a1c.ref_low, a1c.ref_high) == (4.0, 6.0)
    assert [e.encounter_type for e in s.encounters] == ["inpatient", "inpatient", "outpatient"]
    assert s.encounters[1].diagnosis == "心力衰竭 / Heart failure"
    assert [(n.id, n.first_line) for n in s.notes] == [(rows["note"].id, "主诉：口干多饮。")]
    assert {f.description for f in s.follow_ups} == {"复查", "随访"}
    gaps = {(g.kind, g.source_table, g.source_id) for g in s.care_gaps}
    # HbA1c was measured a month ago: only the creatinine for hypertension is overdue.
    assert gaps == {
        ("missed_follow_up", "follow_ups", rows["missed"].id),
        ("overdue_lab", "problems", rows["htn"].id),
    }
    assert (s.billing.unpaid_count, s.billing.balance) == (1, Decimal("70.00"))
    assert [(r.model_name, r.score) for r in s.risks] == [("readmission_30d", 0.31)]
    logged = session.execute(
        select(AuditEvent.actor_id, AuditEvent.detail).where(
            AuditEvent.action == "records.view_summary", AuditEvent.patient_id == patient.id
        )
    ).all()
    assert logged == [(doctor.user_id, {"basis": "care"})]


def test_narrative_reads_well_and_every_statement_points_at_a_real_row(session: Session) -> None:
    patient, doctor, rows = _record(session)
    s = build_summary(session=session, actor=doctor, patient_id=patient.id, today=local_today())
    english = narrative(s, "en")
    texts = [st.text for st in english]
    assert texts[0] == (
        f"{s.header.age}-year-old man with type 2 diabetes mellitus (since 2019) "
        "and essential hypertension."
    )
    day = rows["new_a1c"].observed_at.date().isoformat()
    assert f"HbA1c 9.1% on {day}, rising from 7.4." in texts
    assert "Admitted once in the last 12 months, for heart failure." in texts
    assert "Allergic to penicillin." in texts
    assert "Current medications (1): metformin." in texts
    assert "1 unpaid bill(s)." in texts
    for statement in english:
        assert statement.sources
        for source in statement.sources:
            column = "id" if source.table == "patients" else "patient_id"
            owner = session.scalar(
                text(f"SELECT {column} FROM {source.table} WHERE id = :id"), {"id": source.row_id}
            )
            assert owner == patient.id, statement
    chinese = [st.text for st in narrative(s, "zh")]
    assert chinese[0].startswith(f"{s.header.age}岁男性，患有2型糖尿病（2019年起）和原发性高血压")
    assert "对青霉素过敏。" in chinese
    assert len(chinese) == len(texts)


def test_sections_cost_a_fixed_number_of_queries(session: Session) -> None:
    patient, doctor, _ = _record(session)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    def run() -> int:
        statements.clear()
        event.listen(session.connection(), "before_cursor_execute", count)
        try:
            build_summary(session=session, actor=doctor, patient_id=patient.id, today=local_today())
        finally:
            event.remove(session.connection(), "before_cursor_execute", count)
        return len(statements)

    before = run()
    endo = factories.department(session, "ENDO")
    for days in range(40):
        stay = Encounter(
            patient_id=patient.id, encounter_type="outpatient", department_id=endo.id,
            started_at=_ago(days + 5), status="closed",
        )  # fmt: skip
        _add(session, stay, _lab(patient, HBA1C, "HbA1c", "8.0", days + 5, "H"))
    assert run() == before <= 16


def test_a_doctor_outside_care_is_refused_and_audited(session: Session) -> None:
    patient, _, _ = _record(session)
    surgery = factories.department(session, "SURG")
    stranger = factories.actor(session, "doctor", departments=(surgery.id,))
    with pytest.raises(AccessDenied):
        build_summary(session=session, actor=stranger, patient_id=patient.id, today=local_today())
    actions = session.execute(
        select(AuditEvent.action, AuditEvent.outcome).where(
            AuditEvent.actor_id == stranger.user_id, AuditEvent.patient_id == patient.id
        )
    ).all()
    assert actions == [("clinical.access", "denied")]


def test_break_glass_opens_the_summary_and_says_so(session: Session) -> None:
    patient, _, _ = _record(session)
    surgery = factories.department(session, "SURG")
    stranger = factories.actor(session, "doctor", departments=(surgery.id,))
    open_break_glass(
        session=session, actor=stranger, patient_id=patient.id, reason="collapsed in the lobby"
    )
    s = build_summary(session=session, actor=stranger, patient_id=patient.id, today=local_today())
    assert s.basis == "break_glass"
    detail = session.scalar(
        select(AuditEvent.detail).where(
            AuditEvent.actor_id == stranger.user_id, AuditEvent.action == "records.view_summary"
        )
    )
    assert detail == {"basis": "break_glass"}


@pytest.mark.parametrize("role", ["registrar", "finance", "manager", "data_staff", "admin"])
def test_roles_without_clinical_privilege_are_refused(session: Session, role: str) -> None:
    patient, _, _ = _record(session)
    outsider = factories.actor(session, role)
    with pytest.raises(AccessDenied):
        build_summary(session=session, actor=outsider, patient_id=patient.id, today=local_today())
    assert (
        session.scalar(
            select(AuditEvent.id).where(
                AuditEvent.actor_id == outsider.user_id, AuditEvent.action == "records.view_summary"
            )
        )
        is None
    )


def test_an_empty_record_still_summarises(session: Session) -> None:
    endo = factories.department(session, "ENDO")
    doctor = factories.actor(session, "doctor", departments=(endo.id,))
    patient = factories.patient(session, sex="F")
    _add(
        session,
        Encounter(
            patient_id=patient.id, encounter_type="emergency", department_id=endo.id,
            started_at=_ago(1), status="open",
        ),
    )  # fmt: skip
    s = build_summary(session=session, actor=doctor, patient_id=patient.id, today=local_today())
    assert (s.allergies, s.problems, s.medications, s.labs, s.notes, s.risks) == ((),) * 6
    assert s.billing.unpaid_count == 0
    texts = [st.text for st in narrative(s, "en")]
    assert texts == [f"{s.header.age}-year-old woman.", "No known allergies."]
