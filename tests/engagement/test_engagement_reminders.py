"""Reminder rules fire once per event (twice run, or two processes at once), and the inbox."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Engine, create_engine, func, select, update
from sqlalchemy.orm import Session

import factories
from cims.appointments.models import Appointment
from cims.base import utcnow
from cims.billing.models import Invoice
from cims.engagement.errors import InvalidEngagement
from cims.engagement.models import OutboxMessage, Reminder, ReminderRule
from cims.engagement.reminders import (
    acknowledge_reminder,
    count_unread_reminders,
    ensure_default_rules,
    evaluate_reminders,
    list_my_reminders,
    snooze_reminder,
)
from cims.records.models import Encounter, FollowUp, Observation, Prescription, TreatmentPlan
from cims.security.rbac import AccessDenied


def _appointment_tomorrow(session: Session, patient_id: int) -> Appointment:
    department = factories.department(session)
    at = utcnow().replace(microsecond=0) + dt.timedelta(hours=20)
    appointment = Appointment(
        patient_id=patient_id,
        department_id=department.id,
        status="booked",
        booked_at=utcnow(),
        scheduled_at=at,
    )
    session.add(appointment)
    session.flush()
    return appointment


def _count(session: Session, rule: str, event: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Reminder)
            .where(Reminder.rule_code == rule, Reminder.event_key == event)
        )
        or 0
    )


def _set_channel(session: Session, code: str, channel: str) -> None:
    ensure_default_rules(session)
    session.execute(update(ReminderRule).where(ReminderRule.code == code).values(channel=channel))


def test_default_rules_are_installed_once_and_edits_are_kept(session: Session) -> None:
    ensure_default_rules(session)
    session.execute(
        update(ReminderRule).where(ReminderRule.code == "high_risk").values(enabled=False)
    )
    assert ensure_default_rules(session) == 0
    rule = session.scalar(select(ReminderRule).where(ReminderRule.code == "high_risk"))
    assert rule is not None and rule.enabled is False


def test_appointment_tomorrow_fires_once_and_goes_to_the_sms_outbox(session: Session) -> None:
    patient = factories.patient(session)
    appointment = _appointment_tomorrow(session, patient.id)
    _set_channel(session, "appointment_tomorrow", "sms")
    # Tomorrow in hospital time may be more than a day away: use a moment just before it.
    now = appointment.scheduled_at - dt.timedelta(hours=2)
    evaluate_reminders(session, now)
    evaluate_reminders(session, now)
    event = f"appointment:{appointment.id}"
    assert _count(session, "appointment_tomorrow", event) == 1
    reminder = session.scalar(select(Reminder).where(Reminder.event_key == event))
    assert reminder is not None and reminder.recipient_patient_id == patient.id
    assert reminder.message_key == "reminder.appointment_tomorrow"
    outbox = session.scalars(
        select(OutboxMessage).where(OutboxMessage.recipient == f"patient:{patient.id}")
    ).all()
    assert [(m.channel, m.template) for m in outbox] == [("sms", "reminder.appointment_tomorrow")]


def test_email_channel_writes_the_outbox_and_in_app_does_not(session: Session) -> None:
    patient = factories.patient(session)
    invoice_id = factories.issued_invoice(session, patient_id=patient.id)
    session.execute(
        update(Invoice)
        .where(Invoice.id == invoice_id)
        .values(due_date=dt.date.today() - dt.timedelta(days=10))
    )
    _set_channel(session, "invoice_overdue", "email")
    _set_channel(session, "invoice_overdue_finance", "in_app")
    finance = factories.actor(session, "finance")
    before = session.scalar(select(func.count()).select_from(OutboxMessage)) or 0
    evaluate_reminders(session, utcnow())
    assert _count(session, "invoice_overdue", f"invoice:{invoice_id}") == 1
    mail = session.scalars(
        select(OutboxMessage).where(OutboxMessage.recipient == f"patient:{patient.id}")
    ).all()
    assert [(m.channel, m.template) for m in mail] == [("email", "reminder.invoice_overdue")]
    assert mail[0].params["balance"] == "100.00"
    # Finance gets one in-app digest a day, not a message per bill and no outbox row.
    digest = list_my_reminders(session=session, actor=finance)
    assert [r.rule_code for r in digest] == ["invoice_overdue_finance"]
    assert digest[0].params["count"] >= 1
    after = session.scalar(select(func.count()).select_from(OutboxMessage)) or 0
    assert after - before == 1


def test_clinical_rules_reach_the_doctor_and_the_patient(session: Session) -> None:
    doctor = factories.actor(session, "doctor")
    patient = factories.patient(session)
    department = factories.department(session)
    now = utcnow()
    visit = Encounter(
        patient_id=patient.id,
        encounter_type="outpatient",
        department_id=department.id,
        attending_id=doctor.user_id,
        started_at=now - dt.timedelta(days=2),
        status="open",
    )
    session.add(visit)
    session.flush()
    lab = Observation(
        patient_id=patient.id,
        encounter_id=visit.id,
        code="2823-3",
        name="Potassium",
        value_num=Decimal("6.8"),
        abnormal_flag="HH",
        observed_at=now - dt.timedelta(hours=3),
    )
    normal = Observation(
        patient_id=patient.id,
        encounter_id=visit.id,
        code="2345-7",
        name="Glucose",
        value_num=Decimal("5.0"),
        abnormal_flag="N",
        observed_at=now - dt.timedelta(hours=3),
    )
    plan = TreatmentPlan(
        patient_id=patient.id, title="DM", start_date=dt.date.today(), status="active"
    )
    session.add_all([lab, normal, plan])
    session.flush()
    follow_up = FollowUp(
        plan_id=plan.id, patient_id=patient.id, due_date=dt.date.today(), description="复查"
    )
    refill = Prescription(
        patient_id=patient.id,
        encounter_id=visit.id,
        drug_code="MET",
        drug_name="Metformin",
        dose=Decimal("500"),
        dose_unit="mg",
        route="oral",
        frequency="bid",
        duration_days=3,
        quantity=Decimal("6"),
        prescribed_at=now - dt.timedelta(days=2),
    )
    session.add_all([follow_up, refill])
    session.flush()
    evaluate_reminders(session, now)
    evaluate_reminders(session, now)
    assert _count(session, "abnormal_lab", f"observation:{lab.id}") == 1
    assert _count(session, "abnormal_lab", f"observation:{normal.id}") == 0
    assert _count(session, "follow_up_due", f"follow_up:{follow_up.id}") == 1
    assert _count(session, "refill_due", f"prescription:{refill.id}") == 1
    mine = list_my_reminders(session=session, actor=doctor)
    assert [(r.rule_code, r.params["flag"]) for r in mine] == [("abnormal_lab", "HH")]
    # An acknowledged lab raises nothing new.
    lab2 = Observation(
        patient_id=patient.id,
        encounter_id=visit.id,
        code="2823-3",
        name="Potassium",
        value_num=Decimal("2.1"),
        abnormal_flag="LL",
        observed_at=now - dt.timedelta(hours=1),
        acknowledged_at=now,
    )
    session.add(lab2)
    session.flush()
    evaluate_reminders(session, now)
    assert _count(session, "abnormal_lab", f"observation:{lab2.id}") == 0


def test_inbox_acknowledge_and_snooze(session: Session) -> None:
    patient = factories.patient(session)
    me = factories.actor(session, "patient", patient_id=patient.id)
    other = factories.actor(session, "patient", patient_id=factories.patient(session).id)
    appointment = _appointment_tomorrow(session, patient.id)
    evaluate_reminders(session, appointment.scheduled_at - dt.timedelta(hours=2))
    assert count_unread_reminders(session=session, actor=me) == 1
    assert count_unread_reminders(session=session, actor=other) == 0
    [reminder] = list_my_reminders(session=session, actor=me)
    with pytest.raises(LookupError):
        acknowledge_reminder(session=session, actor=other, reminder_id=reminder.reminder_id)
    with pytest.raises(InvalidEngagement):
        snooze_reminder(session=session, actor=me, reminder_id=reminder.reminder_id, hours=0)
    snoozed = snooze_reminder(session=session, actor=me, reminder_id=reminder.reminder_id)
    assert snoozed.status == "snoozed"
    assert count_unread_reminders(session=session, actor=me) == 0
    # The job wakes it when the snooze is over.
    evaluate_reminders(session, utcnow() + dt.timedelta(hours=25))
    assert count_unread_reminders(session=session, actor=me) == 1
    done = acknowledge_reminder(session=session, actor=me, reminder_id=reminder.reminder_id)
    assert done.status == "acknowledged"
    assert list_my_reminders(session=session, actor=me) == []
    assert len(list_my_reminders(session=session, actor=me, include_done=True)) == 1


def test_inbox_needs_a_signed_in_actor(session: Session) -> None:
    with pytest.raises(AccessDenied):
        list_my_reminders(session=session, actor=None)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def own_engine(fresh_database: Callable[[str], str]) -> Iterator[Engine]:
    """A database of its own: the race needs real commits from two connections."""
    engine = create_engine(fresh_database("reminder_race"))
    yield engine
    engine.dispose()


def test_two_processes_evaluating_at_once_raise_one_reminder(own_engine: Engine) -> None:
    with Session(own_engine) as db, db.begin():
        patient = factories.patient(db)
        appointment = _appointment_tomorrow(db, patient.id)
        _set_channel(db, "appointment_tomorrow", "sms")
        now = appointment.scheduled_at - dt.timedelta(hours=2)
        patient_id, appointment_id = patient.id, appointment.id
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with Session(own_engine) as db, db.begin():
                barrier.wait(timeout=10)
                evaluate_reminders(db, now)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    with Session(own_engine) as db:
        assert _count(db, "appointment_tomorrow", f"appointment:{appointment_id}") == 1
        outbox = db.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.recipient == f"patient:{patient_id}")
        )
        assert outbox == 1
