"""The patient summary page through AppTest on a seeded demo hospital, signed in as `doctor`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from cims.appointments.service import list_my_clinic
from cims.base import utcnow
from cims.clock import local_today
from cims.patients.models import Patient
from cims.security import signin
from cims.security.care import in_care
from cims.security.models import User
from cims.security.rbac import Actor

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "patient_summary.py")
TIMEOUT = 60


@pytest.fixture(scope="module")
def summary_url(seeded_app_database: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """A small seeded demo hospital that the app under test is pointed at."""
    with seeded_app_database("summary_page", patients=300, seed=7) as url:
        yield url


def _doctor(url: str) -> tuple[object, Actor, list[int], int]:
    """A live session for `doctor`, today's clinic patients, and one patient outside care."""
    engine = create_engine(url)
    with Session(engine) as session:
        user_id = session.scalar(select(User.id).where(User.username == "doctor"))
        assert user_id is not None
        session_id, actor = signin.start_session(session=session, user_id=user_id)
        clinic = [
            row.patient_id
            for row in list_my_clinic(session=session, actor=actor, day=local_today())
        ]
        now = utcnow()
        outside = next(
            pid
            for pid in session.scalars(select(Patient.id).order_by(Patient.id))
            if not in_care(session, actor, pid, now)
        )
        session.commit()
    engine.dispose()
    return session_id, actor, clinic, outside


def _page(session_id: object, actor: Actor, patient: int | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state["lang"] = "en"
    at.session_state["actor"] = actor
    at.session_state["auth_session_id"] = session_id
    if patient is not None:
        at.query_params["patient"] = str(patient)
    return at.run()


def _charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def _timeline_shown(at: AppTest) -> bool:
    """Whether the encounter timeline (the chart with a Department axis) is on the page."""
    return any('"Department"' in chart.proto.spec for chart in at.get("plotly_chart"))


def test_doctor_opens_a_clinic_patients_summary(summary_url: str) -> None:
    session_id, actor, clinic, _ = _doctor(summary_url)
    assert clinic, "the demo doctor has patients booked today"
    at = _page(session_id, actor)
    assert not at.exception, at.exception
    assert at.selectbox[0].value == clinic[0]
    with Session(create_engine(summary_url)) as session:
        mrn = session.scalar(select(Patient.mrn).where(Patient.id == clinic[0]))
    assert any(mrn and mrn in header.value for header in at.subheader), "banner with the MRN"
    assert _timeline_shown(at), "the encounter timeline"
    assert "Overview" in [h.value for h in at.subheader]
    assert not [e.value for e in at.error], "no break-glass banner inside care"
    # Another clinic patient, picked from the list, renders too.
    if len(clinic) > 1:
        at.selectbox[0].set_value(clinic[1]).run()
        assert not at.exception, at.exception


def test_chinese_summary_has_no_missing_strings(summary_url: str) -> None:
    session_id, actor, clinic, _ = _doctor(summary_url)
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state["lang"] = "zh"
    at.session_state["actor"] = actor
    at.session_state["auth_session_id"] = session_id
    at.query_params["patient"] = str(clinic[0])
    at.run()
    assert not at.exception, at.exception
    shown = [m.value for m in at.markdown] + [h.value for h in at.subheader]
    assert not [text for text in shown if "summary." in text]


def test_patient_outside_care_offers_break_glass_then_shows_it(summary_url: str) -> None:
    session_id, actor, _, outside = _doctor(summary_url)
    at = _page(session_id, actor, patient=outside)
    assert not at.exception, at.exception
    assert any("not in your care" in w.value for w in at.warning)
    assert _charts(at) == 0, "nothing clinical before the glass is broken"
    at.text_input(key="break_glass_reason").input("short")
    at.button[0].click().run()
    assert "Give a reason of at least 10 characters." in [e.value for e in at.error]
    at.text_input(key="break_glass_reason").input("Collapsed in the lobby, unresponsive")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("Break-glass access" in e.value for e in at.error)
    assert _timeline_shown(at)


def test_medicines_show_route_and_frequency_in_words(summary_url: str) -> None:
    from sqlalchemy import text

    from cims.records.drugs import FREQUENCIES

    session_id, actor, clinic, _ = _doctor(summary_url)
    engine = create_engine(summary_url)
    with engine.connect() as conn:
        patient = conn.execute(
            text(
                "SELECT patient_id FROM prescriptions WHERE status = 'active' "
                "AND patient_id = ANY(:clinic) ORDER BY patient_id LIMIT 1"
            ),
            {"clinic": clinic},
        ).scalar()
    engine.dispose()
    assert patient is not None, "a clinic patient of the demo doctor takes a medicine"
    at = _page(session_id, actor, patient)
    assert not at.exception, at.exception
    [medicines] = [d.value for d in at.dataframe if "Frequency" in d.value.columns]
    assert set(medicines["Route"]) <= {"Oral", "Intravenous", "Intramuscular", "Subcutaneous",
                                       "Inhaled", "Topical"}  # fmt: skip
    assert not set(medicines["Frequency"]) & set(FREQUENCIES)  # words, not bare codes
    assert all("(" in value for value in medicines["Frequency"])  # "Twice daily (bid)"
