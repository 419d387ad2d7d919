"""Consultation access and actions, surveys once per visit, and the portal assistant."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import factories
from cims.base import utcnow
from cims.engagement.assistant import ask_assistant
from cims.engagement.consultation import (
    book_follow_up_from_thread,
    close_my_thread,
    list_consultation_queue,
    list_my_threads,
    open_my_thread,
    prescribe_online,
    read_my_thread,
    read_thread,
    reply_to_my_thread,
    reply_to_thread,
    response_times,
)
from cims.engagement.errors import InvalidEngagement
from cims.engagement.models import ConsultationMessage, Survey
from cims.engagement.surveys import list_visits_to_rate, submit_survey, survey_results
from cims.records.models import Encounter, Prescription
from cims.security.care import open_break_glass
from cims.security.rbac import AccessDenied, Actor


def _visit(session: Session, patient_id: int, doctor: Actor, *, closed: bool = False) -> Encounter:
    department = factories.department(session)
    now = utcnow()
    visit = Encounter(
        patient_id=patient_id,
        encounter_type="outpatient",
        department_id=department.id,
        attending_id=doctor.user_id,
        started_at=now - dt.timedelta(hours=3),
        ended_at=now - dt.timedelta(hours=1) if closed else None,
        status="closed" if closed else "open",
    )
    session.add(visit)
    session.flush()
    return visit


def _setting(session: Session) -> tuple[Actor, Actor, int]:
    """A portal patient with a closed visit by a doctor of ENDO; returns patient, doctor, dept."""
    department = factories.department(session)
    patient = factories.patient(session)
    me = factories.actor(session, "patient", patient_id=patient.id)
    doctor = factories.actor(session, "doctor", departments=(department.id,))
    _visit(session, patient.id, doctor, closed=True)
    return me, doctor, department.id


def test_thread_round_trip_with_unread_counts_and_response_time(session: Session) -> None:
    me, doctor, department_id = _setting(session)
    thread = open_my_thread(
        session=session, actor=me, department_id=department_id, subject="血糖", body="空腹 8.0"
    )
    assert thread.doctor_id == doctor.user_id  # the doctor who saw me last
    stored = session.scalar(
        select(ConsultationMessage.body_enc).where(ConsultationMessage.thread_id == thread.id)
    )
    assert stored is not None and "空腹".encode() not in stored  # encrypted at rest
    [queued] = list_consultation_queue(session=session, actor=doctor)
    assert queued.unread == 1 and queued.subject == "血糖"
    view = read_thread(session=session, actor=doctor, thread_id=thread.id)
    assert [(m.body, m.from_patient) for m in view.messages] == [("空腹 8.0", True)]
    reply_to_thread(session=session, actor=doctor, thread_id=thread.id, body="请记录一周血糖")
    assert thread.status == "answered" and thread.first_response_at is not None
    [mine] = list_my_threads(session=session, actor=me)
    assert mine.unread == 1
    read = read_my_thread(session=session, actor=me, thread_id=thread.id)
    assert [m.mine for m in read.messages] == [True, False]
    assert list_my_threads(session=session, actor=me)[0].unread == 0
    reply_to_my_thread(session=session, actor=me, thread_id=thread.id, body="好的")
    close_my_thread(session=session, actor=me, thread_id=thread.id)
    with pytest.raises(InvalidEngagement) as refused:
        reply_to_my_thread(session=session, actor=me, thread_id=thread.id, body="再问")
    assert refused.value.problems == ["engagement.thread_closed"]
    manager = factories.actor(session, "manager")
    figures = response_times(
        session=session,
        actor=manager,
        start=utcnow() - dt.timedelta(days=1),
        end=utcnow() + dt.timedelta(days=1),
    )
    endo = [f for f in figures if f.department_id == department_id]
    assert endo and endo[0].answered >= 1 and endo[0].median_minutes is not None


def test_bad_input_writes_nothing(session: Session) -> None:
    me, _doctor, department_id = _setting(session)
    with pytest.raises(InvalidEngagement) as refused:
        open_my_thread(session=session, actor=me, department_id=department_id, subject=" ", body="")
    assert refused.value.problems == ["engagement.subject_required", "engagement.body_required"]
    assert list_my_threads(session=session, actor=me) == []


def test_only_the_patient_and_clinicians_in_care_read_a_thread(session: Session) -> None:
    me, doctor, department_id = _setting(session)
    thread = open_my_thread(
        session=session, actor=me, department_id=department_id, subject="Q", body="question"
    )
    other_patient = factories.actor(session, "patient", patient_id=factories.patient(session).id)
    with pytest.raises(LookupError):
        read_my_thread(session=session, actor=other_patient, thread_id=thread.id)
    with pytest.raises(LookupError):
        reply_to_my_thread(session=session, actor=other_patient, thread_id=thread.id, body="x")
    stranger = factories.actor(session, "doctor")  # no department, never saw the patient
    with pytest.raises(AccessDenied):
        read_thread(session=session, actor=stranger, thread_id=thread.id)
    assert list_consultation_queue(session=session, actor=stranger) == []
    for role in ("nurse", "registrar", "finance", "manager", "admin"):
        with pytest.raises(AccessDenied):
            read_thread(session=session, actor=factories.actor(session, role), thread_id=thread.id)
    with pytest.raises(AccessDenied):
        read_my_thread(session=session, actor=doctor, thread_id=thread.id)
    # Break-glass opens it, for a while and on the record.
    open_break_glass(
        session=session, actor=stranger, patient_id=thread.patient_id, reason="urgent question"
    )
    assert read_thread(session=session, actor=stranger, thread_id=thread.id).messages


def test_online_prescription_lands_in_the_record(session: Session) -> None:
    me, doctor, department_id = _setting(session)
    thread = open_my_thread(
        session=session, actor=me, department_id=department_id, subject="续药", body="需要续药"
    )
    prescription = prescribe_online(
        session=session,
        actor=doctor,
        thread_id=thread.id,
        drug_code="A10BA02",
        drug_name="二甲双胍 Metformin",
        dose="500",
        dose_unit="mg",
        route="oral",
        frequency="bid",
        duration_days=30,
        quantity="60",
    )
    stored = session.get(Prescription, prescription.id)
    assert stored is not None and stored.online is True
    assert stored.patient_id == me.patient_id and stored.prescriber_id == doctor.user_id
    encounter = session.get(Encounter, stored.encounter_id)
    assert encounter is not None and encounter.status == "open"
    assert encounter.encounter_type == "outpatient" and encounter.attending_id == doctor.user_id
    view = read_my_thread(session=session, actor=me, thread_id=thread.id)
    assert "Metformin" in view.messages[-1].body
    # ... and in billing like any other: the cashier's desk posts it when opening the patient.
    from cims.billing.charges import post_pending_charges
    from cims.billing.models import Charge

    factories.price_item(session, "A10BA02", unit_price="0.20", category="drug")
    cashier = factories.actor(session, "finance")
    post_pending_charges(session=session, actor=cashier, patient_id=stored.patient_id)
    charge = session.scalar(
        select(Charge).where(
            Charge.source_type == "prescription", Charge.source_id == prescription.id
        )
    )
    assert charge is not None and charge.amount == Decimal("12.00")  # 60 x 0.20
    again = post_pending_charges(session=session, actor=cashier, patient_id=stored.patient_id)
    assert again.posted == []  # idempotent
    nurse = factories.actor(session, "nurse")
    with pytest.raises(AccessDenied):
        prescribe_online(
            session=session, actor=nurse, thread_id=thread.id, drug_code="X", drug_name="X",
            dose="1", dose_unit="mg", route="oral", frequency="qd", duration_days=1, quantity="1",
        )  # fmt: skip


def test_follow_up_booked_from_a_thread(session: Session) -> None:
    me, doctor, department_id = _setting(session)
    thread = open_my_thread(
        session=session, actor=me, department_id=department_id, subject="复诊", body="何时复诊"
    )
    slot = factories.future_slot(session, doctor_id=doctor.user_id)
    appointment = book_follow_up_from_thread(
        session=session, actor=doctor, thread_id=thread.id, slot_id=slot.id
    )
    assert appointment.patient_id == me.patient_id and appointment.channel == "consultation"


def test_survey_once_per_visit_and_results_for_managers(session: Session) -> None:
    me, doctor, _department_id = _setting(session)
    assert me.patient_id is not None
    open_visit = _visit(session, me.patient_id, doctor)
    [visit] = list_visits_to_rate(session=session, actor=me)
    answers = {"waiting": 4, "doctor": 5, "environment": 4, "billing": 3, "recommend": 9}
    with pytest.raises(InvalidEngagement) as refused:
        submit_survey(
            session=session, actor=me, encounter_id=visit.encounter_id, **{**answers, "doctor": 6}
        )
    assert refused.value.problems == ["survey.bad_doctor"]
    submit_survey(session=session, actor=me, encounter_id=visit.encounter_id, **answers)
    with pytest.raises(InvalidEngagement) as again:
        submit_survey(session=session, actor=me, encounter_id=visit.encounter_id, **answers)
    assert again.value.problems == ["survey.already_answered"]
    with pytest.raises(InvalidEngagement):
        submit_survey(session=session, actor=me, encounter_id=open_visit.id, **answers)
    other = factories.actor(session, "patient", patient_id=factories.patient(session).id)
    with pytest.raises(LookupError):
        submit_survey(session=session, actor=other, encounter_id=visit.encounter_id, **answers)
    assert list_visits_to_rate(session=session, actor=me) == []
    count = session.scalars(select(Survey).where(Survey.encounter_id == visit.encounter_id)).all()
    assert len(count) == 1
    results = survey_results(
        session=session,
        actor=factories.actor(session, "manager"),
        start=dt.date.today() - dt.timedelta(days=40),
        end=dt.date.today() + dt.timedelta(days=2),
    )
    assert sum(r.answered for r in results) >= 1
    assert all(r.nps is None or -100 <= r.nps <= 100 for r in results)


@pytest.mark.parametrize(
    ("question", "kind", "topic", "intent", "language"),
    [
        ("门诊几点开门？", "faq", "hours", None, "zh"),
        ("What are your opening hours?", "faq", "hours", None, "en"),
        ("看病要带什么证件", "faq", "bring", None, "zh"),
        ("what should I bring", "faq", "bring", None, "en"),
        ("医院能停车吗", "faq", "parking", None, "zh"),
        ("Is there parking?", "faq", "parking", None, "en"),
        ("我想预约挂号", "intent", None, "book", "zh"),
        ("I want to book a visit", "intent", None, "book", "en"),
        ("我要缴费", "intent", None, "pay", "zh"),
        ("how do I pay my bill", "intent", None, "pay", "en"),
        ("我的预约", "intent", None, "my_appointments", "zh"),
        ("show my appointments", "intent", None, "my_appointments", "en"),
        ("我的检查结果出来了吗", "intent", None, "my_results", "zh"),
        ("my lab results", "intent", None, "my_results", "en"),
        ("量子纠缠是什么", "unsure", None, None, "zh"),
        ("quantum entanglement explained", "unsure", None, None, "en"),
    ],
)
def test_assistant_answers_in_both_languages(
    session: Session, question: str, kind: str, topic: str | None, intent: str | None,
    language: str,
) -> None:  # fmt: skip
    me = factories.actor(session, "patient", patient_id=factories.patient(session).id)
    answer = ask_assistant(session=session, actor=me, question=question, language="en")
    assert (answer.kind, answer.intent, answer.language) == (kind, intent, language), answer
    if topic is not None:
        assert answer.topic == topic and answer.answer
    if kind == "intent":
        assert answer.page in (
            "pages/portal_book.py",
            "pages/portal_pay.py",
            "pages/patient_home.py",
        )
    if kind == "unsure":
        assert answer.page == "pages/portal_messages.py" and answer.answer is None


def test_a_patient_reaches_no_other_patients_thread_reminder_or_visit_by_any_id(
    session: Session,
) -> None:
    from cims.engagement.models import ConsultationThread, Reminder
    from cims.engagement.reminders import acknowledge_reminder, snooze_reminder

    me, _doctor, department_id = _setting(session)
    others = []
    for _ in range(3):
        other, _d, _ = _setting(session)
        others.append(other)
        open_my_thread(
            session=session, actor=other, department_id=department_id, subject="S", body="B"
        )
        session.add(
            Reminder(
                rule_code="refill_due",
                event_key=f"t:{other.patient_id}",
                recipient_patient_id=other.patient_id,
                patient_id=other.patient_id,
                message_key="reminder.refill_due",
                params={},
            )
        )
    mine = open_my_thread(
        session=session, actor=me, department_id=department_id, subject="S", body="B"
    )
    session.flush()
    for thread_id in session.scalars(select(ConsultationThread.id)):
        if thread_id == mine.id:
            assert read_my_thread(session=session, actor=me, thread_id=thread_id).messages
            continue
        for attempt in (read_my_thread, close_my_thread):
            with pytest.raises(LookupError):
                attempt(session=session, actor=me, thread_id=thread_id)
        with pytest.raises(LookupError):
            reply_to_my_thread(session=session, actor=me, thread_id=thread_id, body="x")
    assert [t.thread_id for t in list_my_threads(session=session, actor=me)] == [mine.id]
    for reminder_id in session.scalars(select(Reminder.id)):
        for action in (acknowledge_reminder, snooze_reminder):
            with pytest.raises(LookupError):
                action(session=session, actor=me, reminder_id=reminder_id)
    answers = {"waiting": 4, "doctor": 5, "environment": 4, "billing": 3, "recommend": 9}
    own = {v.encounter_id for v in list_visits_to_rate(session=session, actor=me)}
    for encounter_id in session.scalars(select(Encounter.id)):
        if encounter_id in own:
            continue
        with pytest.raises((LookupError, InvalidEngagement)):
            submit_survey(session=session, actor=me, encounter_id=encounter_id, **answers)


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def test_files_in_a_thread_are_encrypted_and_reach_only_its_people(session: Session) -> None:
    from cims.engagement.consultation import (
        attach_to_my_thread,
        attach_to_thread,
        download_my_thread_file,
        download_thread_file,
    )
    from cims.records.attachments import InvalidAttachment
    from cims.records.models import Attachment

    me, doctor, department_id = _setting(session)
    thread = open_my_thread(
        session=session, actor=me, department_id=department_id, subject="皮疹", body="见照片"
    )
    message = attach_to_my_thread(
        session=session, actor=me, thread_id=thread.id, filename="rash.png",
        content_type="image/png", data=PNG,
    )  # fmt: skip
    assert message.attachment_id is not None
    stored = session.get(Attachment, message.attachment_id)
    assert stored is not None and PNG not in stored.content_enc  # encrypted at rest
    view = read_thread(session=session, actor=doctor, thread_id=thread.id)
    assert view.messages[-1].attachment_name == "rash.png"
    got = download_thread_file(
        session=session, actor=doctor, thread_id=thread.id, attachment_id=message.attachment_id
    )
    assert got.data == PNG
    reply = attach_to_thread(
        session=session, actor=doctor, thread_id=thread.id, filename="advice.txt",
        content_type="text/plain", data=b"Use the cream twice a day.",
    )  # fmt: skip
    mine = download_my_thread_file(
        session=session, actor=me, thread_id=thread.id, attachment_id=reply.attachment_id or 0
    )
    assert mine.data.startswith(b"Use the cream")
    with pytest.raises(InvalidAttachment):  # a renamed executable is not a picture
        attach_to_my_thread(
            session=session, actor=me, thread_id=thread.id, filename="x.png",
            content_type="image/png", data=b"MZ\x90\x00 not a png",
        )  # fmt: skip
    stranger = factories.actor(session, "patient", patient_id=factories.patient(session).id)
    with pytest.raises(LookupError):
        download_my_thread_file(
            session=session, actor=stranger, thread_id=thread.id,
            attachment_id=message.attachment_id,
        )  # fmt: skip
    other = open_my_thread(
        session=session, actor=me, department_id=department_id, subject="另一件事", body="?"
    )
    with pytest.raises(LookupError):  # a file of one thread is not reachable through another
        download_my_thread_file(
            session=session, actor=me, thread_id=other.id, attachment_id=message.attachment_id
        )
