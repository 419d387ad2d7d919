"""Portal messages, survey, assistant, reminders inbox, doctor consultations (AppTest)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest
from test_pages import _signed_in_page

from cims.appointments.models import Appointment
from cims.base import utcnow
from cims.clock import local_today
from cims.engagement.models import ConsultationThread
from cims.engagement.reminders import evaluate_reminders
from cims.security.models import User

MESSAGES = "pages/portal_messages.py"
SURVEY = "pages/portal_survey.py"
ASSISTANT = "pages/portal_assistant.py"
INBOX = "pages/inbox.py"
DOCTOR = "pages/doctor_consultations.py"


@pytest.fixture(scope="module")
def seeded_url(seeded_app_database: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """A small seeded demo hospital that the app under test is pointed at."""
    with seeded_app_database("portal_pages", patients=200, seed=17) as url:
        yield url


def _has(at: AppTest, key: str) -> bool:
    return any(box.key == key for box in at.selectbox)


def _click(at: AppTest, label: str) -> AppTest:
    [button] = [b for b in at.button if b.label == label]
    return button.click().run()


def test_patient_opens_a_consultation_and_the_doctor_answers(seeded_url: str) -> None:
    at = _signed_in_page(seeded_url, "patient", MESSAGES)
    assert not at.exception, at.exception
    assert at.title[0].value == "Online consultation"
    at.text_input(key="consult_subject").input("Blood pressure question")
    at.text_area(key="consult_body").input("Is 150/95 too high?")
    at = _click(at, "Send")
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == []
    assert at.success[0].value.startswith("Sent")
    engine = create_engine(seeded_url)
    with Session(engine) as db:
        patient_id = db.scalar(select(User.patient_id).where(User.username == "patient"))
        thread = db.scalar(
            select(ConsultationThread).where(
                ConsultationThread.patient_id == patient_id,
                ConsultationThread.subject == "Blood pressure question",
            )
        )
        assert thread is not None
        doctor_id = db.scalar(select(User.id).where(User.username == "doctor"))
        # Route it to the demo doctor, and put the demo patient in their care (a booking).
        db.get(ConsultationThread, thread.id).doctor_id = doctor_id  # type: ignore[union-attr]
        db.add(
            Appointment(
                patient_id=patient_id, department_id=thread.department_id, doctor_id=doctor_id,
                status="booked", booked_at=utcnow(), scheduled_at=utcnow() + dt.timedelta(days=2),
            )
        )  # fmt: skip
        db.commit()
        thread_id = thread.id
    engine.dispose()
    doctor = _signed_in_page(seeded_url, "doctor", DOCTOR)
    assert not doctor.exception, doctor.exception
    assert doctor.title[0].value == "Online consultations"
    box = doctor.selectbox(key="doctor_consult_thread")
    [label] = [o for o in box.options if o.startswith(f"#{thread_id} ")]
    doctor = box.select(label).run()
    assert not doctor.exception, doctor.exception
    assert any("150/95" in m.value for m in doctor.markdown), [w.value for w in doctor.warning]
    doctor.text_area(key="doctor_reply_body").input("Please come in this week.")
    doctor = _click(doctor, "Reply")
    assert not doctor.exception, doctor.exception
    assert [e.value for e in doctor.error] == []
    # A follow-up visit booked from the thread, on the first day with a free time.
    for days in range(1, 15):
        doctor.date_input(key="consult_fu_day").set_value(local_today() + dt.timedelta(days=days))
        doctor = doctor.run()
        if _has(doctor, "consult_fu_slot"):
            break
    doctor = _click(doctor, "Book this time")
    assert not doctor.exception, doctor.exception
    assert doctor.success[0].value.startswith("Follow-up booked for the patient")
    # The patient sees the answer as unread, then reads it.
    at = _signed_in_page(seeded_url, "patient", MESSAGES)
    box = at.selectbox(key="consult_thread")
    [label] = [o for o in box.options if o.startswith(f"#{thread_id} ")]
    assert label.endswith("2 unread")  # the answer and the booking note
    at = box.select(label).run()
    assert any("this week" in m.value for m in at.markdown)


def test_assistant_answers_faq_and_intents_in_both_languages(seeded_url: str) -> None:
    at = _signed_in_page(seeded_url, "patient", ASSISTANT)
    assert not at.exception and at.title[0].value == "Visit assistant"
    at.text_input(key="assistant_question").input("门诊几点开门？")
    at = _click(at, "Ask")
    assert not at.exception, at.exception
    assert any("8:00" in m.value for m in at.markdown), [m.value for m in at.markdown]
    at.text_input(key="assistant_question").input("how do I pay my bill")
    at = _click(at, "Ask")
    assert any("“Pay” page" in m.value for m in at.markdown)
    at.text_input(key="assistant_question").input("quantum entanglement explained")
    at = _click(at, "Ask")
    assert any(m.value.startswith("Sorry, I am not sure") for m in at.markdown)


def test_survey_page_rates_a_visit_once(seeded_url: str) -> None:
    at = _signed_in_page(seeded_url, "patient", SURVEY)
    assert not at.exception and at.title[0].value == "Satisfaction survey"
    if at.info and at.info[0].value.startswith("No visits"):
        return  # the seeded patient had no recent finished visit
    before = len(at.selectbox(key="survey_visit").options)
    at = _click(at, "Submit")
    assert not at.exception, at.exception
    assert at.success[0].value == "Thank you for your feedback!"
    if before > 1:
        assert len(at.selectbox(key="survey_visit").options) == before - 1


def test_inbox_for_patient_and_doctor(seeded_url: str) -> None:
    engine = create_engine(seeded_url)
    with Session(engine) as db, db.begin():
        evaluate_reminders(db)
    engine.dispose()
    for username in ("patient", "doctor", "finance"):
        at = _signed_in_page(seeded_url, username, INBOX)
        assert not at.exception, (username, at.exception)
        assert at.title[0].value == "My reminders"
        assert at.metric[0].label == "Waiting"
        waiting = int(at.metric[0].value)
        got_it = [b for b in at.button if b.label == "Got it"]
        if waiting and got_it:
            at = got_it[0].click().run()
            assert not at.exception, at.exception
            assert int(at.metric[0].value) == waiting - 1
