"""The clinical notes page through AppTest on a seeded demo hospital."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest
from test_pages import ROOT, TIMEOUT, _signed_in_page

from cims.base import utcnow
from cims.patients.models import Patient
from cims.records.models import Encounter
from cims.security import signin
from cims.security.accounts import build_actor
from cims.security.models import User

PAGE = "pages/clinical_notes.py"


@pytest.fixture(scope="module")
def notes_url(seeded_app_database: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """A small seeded demo hospital that the app under test is pointed at."""
    with seeded_app_database("notes_page", patients=200, seed=11) as url:
        yield url


def _click(at: AppTest, label: str) -> AppTest:
    button = next(b for b in at.button if b.label == label)
    return button.click().run()


def _messages(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_doctor_writes_signs_then_adds_an_addendum(notes_url: str) -> None:
    at = _signed_in_page(notes_url, "doctor", PAGE)
    assert not at.exception, at.exception
    assert at.title[0].value == "Clinical notes"
    # Signing an empty note is refused with translated messages and writes nothing.
    at = _click(at, "Sign")
    assert _messages(at) == ["Enter a title.", "Fill in at least one SOAP section."]

    at.text_input(key="new_title").input("Follow-up visit")
    at.text_area(key="new_subjective").input("Thirsty for three months")
    at.text_area(key="new_assessment").input("Type 2 diabetes, poorly controlled")
    at.text_area(key="new_plan").input("Metformin 0.5 g bid")
    at = _click(at, "Sign")
    assert not at.exception, at.exception
    assert _messages(at) == []
    assert [s.value for s in at.success] == ["Note signed; it can no longer be edited."]
    page_text = " ".join(m.value for m in at.markdown)
    assert "**Follow-up visit**" in page_text and "`Signed`" in page_text
    assert "Type 2 diabetes, poorly controlled" in page_text
    # The signed note has no edit form: only an addendum box (newest note first).
    assert not [t for t in at.text_input if t.key and t.key.startswith("draft_")]
    box = next(t for t in at.text_area if t.key and t.key.startswith("addendum_text_"))
    box.input("HbA1c result received: 9.1%")
    at = _click(at, "Add addendum")
    assert not at.exception, at.exception
    assert [s.value for s in at.success] == ["Addendum signed and saved."]
    [addendum] = [i.value for i in at.info if "HbA1c result received" in i.value]
    assert addendum.startswith("Addendum · ")


def test_a_draft_stays_editable_by_its_author(notes_url: str) -> None:
    at = _signed_in_page(notes_url, "doctor", PAGE)
    at.text_input(key="new_title").input("Draft thoughts")
    at.text_area(key="new_objective").input("BP 150/95")
    at = _click(at, "Save draft")
    assert [s.value for s in at.success] == ["Draft saved."]
    [title] = [t for t in at.text_input if t.key and t.key.startswith("draft_")]
    assert title.value == "Draft thoughts"
    draft = title.key.removesuffix("_title")
    at.text_area(key=f"{draft}_plan").input("Recheck in a week")
    signs = [b for b in at.button if b.label == "Sign"]
    at = signs[-1].click().run()  # the draft's own form comes after the new-note form
    assert not at.exception, at.exception
    assert [s.value for s in at.success] == ["Note signed; it can no longer be edited."]
    assert not [t for t in at.text_input if t.key and t.key.startswith("draft_")]


def _nurse_on_a_patient_in_care(url: str) -> AppTest:
    """The demo nurse opening (by link) a patient with a visit in the nurse's department."""
    engine = create_engine(url)
    with Session(engine) as session:
        user = session.scalars(select(User).where(User.username == "nurse")).one()
        actor = build_actor(session, user)
        patient_id = session.scalars(select(Patient.id).order_by(Patient.id).limit(1)).one()
        session.add(
            Encounter(
                patient_id=patient_id,
                encounter_type="outpatient",
                department_id=actor.department_ids[0],
                started_at=utcnow(),
            )
        )
        session_id, actor = signin.start_session(session=session, user_id=user.id)
        session.commit()
    engine.dispose()
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=TIMEOUT)
    at.session_state["lang"] = "en"
    at.session_state["actor"] = actor
    at.session_state["auth_session_id"] = session_id
    at.query_params["patient"] = str(patient_id)
    return at.run()


def test_nurse_reads_notes_files_documents_but_writes_no_soap(notes_url: str) -> None:
    at = _nurse_on_a_patient_in_care(notes_url)
    assert not at.exception, at.exception
    assert _messages(at) == []
    assert not [t for t in at.text_input if t.key == "new_title"]
    assert not [b for b in at.button if b.label in ("Sign", "Add addendum")]
    assert "Upload" in [b.label for b in at.button]  # nurses file scanned documents
    downloads = [b.label for b in at.get("download_button")]
    assert downloads[:3] == ["Print wristband", "Print prescription", "Print visit summary"]
