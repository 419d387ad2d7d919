"""A sample of the corpus through the real pages (Streamlit AppTest), typed and read back.

Hostile text written through a page ends saved or as a translated error, never as an
exception; hostile text already stored (notes, messages, names) shows literally: every
markdown element that carries it holds the escaped form, and none allows raw HTML.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

import factories
from cims.base import utcnow
from cims.engagement.consultation import open_my_thread
from cims.engagement.models import ConsultationMessage
from cims.i18n import catalog
from cims.records.models import ClinicalNote, Encounter
from cims.records.notes import add_addendum, sign_note, write_note
from hostile.harness import LEDGER
from ui.format import plain

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60
SHOWN = (
    "<script>alert(1)</script>",
    "![tracker](http://evil.example/pixel.png)",
    "[click me](javascript:alert(1))",
    ":red[coloured] $x^2$ &lt;b&gt;",
    "# Heading injected",
    "\u202egnp.exe 𠮷野家 😀",
    "'; DROP TABLE patients; --",
    "esc\x1b[31mred",
)
TYPED = (
    "<img src=x onerror=alert(1)>",
    "**bold** [x](javascript:alert(1))",
    "a\x00b",
    "𠮷" * 300,
    "\u202eevil",
    "   ",
    "字" * 6000,
)


@dataclass(frozen=True)
class PageWorld:
    url: str
    patient_id: int


def _user(session: Session, role: str, username: str, **kwargs: object) -> None:
    factories.user(session, role, username=username, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def page_world(fresh_database: Callable[[str], str]) -> Iterator[PageWorld]:
    """A fresh database with a doctor, a portal patient and hostile notes and messages."""
    from cims.db import reset_engine
    from cims.security.accounts import build_actor
    from cims.security.bootstrap import ensure_roles_and_privileges
    from cims.security.models import User

    url = fresh_database("hostile_pages")
    engine = create_engine(url)
    with Session(engine) as session:
        ensure_roles_and_privileges(session)
        department = factories.department(session, "ENDO")
        patient = factories.patient(session, full_name=SHOWN[1], family_name="<b>", given_name="x")
        _user(session, "doctor", "h_doctor", departments=(department.id,))
        _user(session, "patient", "h_patient", patient_id=patient.id)
        users = {u.username: u for u in session.scalars(select(User))}
        doctor = build_actor(session, users["h_doctor"])
        portal = build_actor(session, users["h_patient"])
        session.add(
            Encounter(
                patient_id=patient.id, encounter_type="outpatient", department_id=department.id,
                attending_id=doctor.user_id, started_at=utcnow(), status="open",
            )
        )  # fmt: skip
        session.flush()
        for value in SHOWN:
            note = write_note(
                session=session, actor=doctor, patient_id=patient.id, title=value,
                subjective=value, assessment=f"评估 {value}",
            )  # fmt: skip
            sign_note(session=session, actor=doctor, note_id=note.id)
            add_addendum(session=session, actor=doctor, note_id=note.id, text=value)
        open_my_thread(
            session=session, actor=portal, department_id=department.id, subject="问题",
            body="\n".join(SHOWN),
        )  # fmt: skip
        session.commit()
        patient_id = patient.id
    engine.dispose()
    previous = os.environ.get("CIMS_DATABASE_URL")
    os.environ["CIMS_DATABASE_URL"] = url
    reset_engine()
    try:
        yield PageWorld(url, patient_id)
    finally:
        if previous is None:
            os.environ.pop("CIMS_DATABASE_URL", None)
        else:
            os.environ["CIMS_DATABASE_URL"] = previous
        reset_engine()


def _page(world: PageWorld, username: str, page: str, **state: object) -> AppTest:
    """Open a page file with a real server-side session for ``username``."""
    from cims.security import signin
    from cims.security.models import User

    engine = create_engine(world.url)
    with Session(engine) as session:
        user_id = session.scalar(select(User.id).where(User.username == username))
        assert user_id is not None
        session_id, actor = signin.start_session(session=session, user_id=user_id)
        session.commit()
    engine.dispose()
    at = AppTest.from_file(str(ROOT / page), default_timeout=TIMEOUT)
    at.session_state["lang"] = "en"
    at.session_state["actor"] = actor
    at.session_state["auth_session_id"] = session_id
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def _markdown_bodies(at: AppTest) -> list[str]:
    bodies = []
    for kind in ("markdown", "caption", "info", "error", "success", "warning", "subheader"):
        for element in getattr(at, kind):
            assert not getattr(element.proto, "allow_html", False), (kind, element.value)
            bodies.append(str(element.value))
    return bodies


def _no_unexpected(at: AppTest) -> None:
    assert not at.exception, at.exception
    unexpected = catalog("en")["common.unexpected"].split("{")[0]
    assert not [e.value for e in at.error if str(e.value).startswith(unexpected)]


def _shows_literally(bodies: list[str], value: str, surface: str) -> None:
    escaped = plain(value)
    assert any(escaped in body for body in bodies), (value, escaped)
    # Wherever the text shows, it is in its escaped form (block syntax such as "#" is only
    # escaped at the start of a line, where it would count).
    forms = (escaped, plain("x" + value)[1:])
    raw = [b for b in bodies if value not in forms and value in _without(b, forms)]
    assert not raw, (value, raw)
    LEDGER.note(surface, "stored")


def _without(body: str, forms: tuple[str, ...]) -> str:
    for form in forms:
        body = body.replace(form, "")
    return body


def test_stored_hostile_notes_show_literally(page_world: PageWorld) -> None:
    at = _page(page_world, "h_doctor", "pages/clinical_notes.py", patient_id=page_world.patient_id)
    _no_unexpected(at)
    bodies = _markdown_bodies(at)
    for value in SHOWN:
        _shows_literally(bodies, value, "page.clinical_notes.read")


def test_stored_hostile_messages_show_literally(page_world: PageWorld) -> None:
    at = _page(page_world, "h_patient", "pages/portal_messages.py")
    _no_unexpected(at)
    if not any(plain(SHOWN[0]) in body for body in _markdown_bodies(at)):
        # The thread list is a picker: open the (only) thread.
        for button in at.button:
            if "问题" in str(button.label):
                at = button.click().run()
                break
        for selectbox in at.selectbox:
            at = selectbox.select_index(0).run()
    _no_unexpected(at)
    bodies = _markdown_bodies(at)
    for value in SHOWN:
        _shows_literally(bodies, value, "page.portal_messages.read")


def _key(message: str) -> str:
    """The message key a shown error came from (it must exist: no untranslated text)."""
    keys = [key for key, text in catalog("en").items() if text == message]
    assert keys, f"untranslated error {message!r}"
    return keys[0]


def _count(url: str, model: type) -> int:
    engine = create_engine(url)
    with Session(engine) as session:
        found = int(session.scalar(select(func.count()).select_from(model)) or 0)
    engine.dispose()
    return found


@pytest.mark.parametrize("value", TYPED, ids=range(len(TYPED)))
def test_typing_hostile_text_into_the_note_form(page_world: PageWorld, value: str) -> None:
    before = _count(page_world.url, ClinicalNote)
    at = _page(page_world, "h_doctor", "pages/clinical_notes.py", patient_id=page_world.patient_id)
    at.text_input(key="new_title").input(value)
    at.text_area(key="new_subjective").input(value)
    save = next(b for b in at.button if b.label == "Save draft")  # the new-note form is first
    at = save.click().run()
    _no_unexpected(at)
    errors = [str(e.value) for e in at.error]
    added = _count(page_world.url, ClinicalNote) - before
    if errors:
        assert added == 0, (value, errors)
        LEDGER.note("page.clinical_notes.write", "refused:" + _key(errors[0]))
    else:
        assert added == 1, value
        LEDGER.note("page.clinical_notes.write", "stored")


@pytest.mark.parametrize("value", TYPED, ids=range(len(TYPED)))
def test_typing_hostile_text_into_a_new_question(page_world: PageWorld, value: str) -> None:
    before = _count(page_world.url, ConsultationMessage)
    at = _page(page_world, "h_patient", "pages/portal_messages.py")
    at.text_input(key="consult_subject").input(value[:200])
    at.text_area(key="consult_body").input(value)
    [send] = [b for b in at.button if b.label == catalog("en")["consult.send"]]
    at = send.click().run()
    _no_unexpected(at)
    errors = [str(e.value) for e in at.error]
    added = _count(page_world.url, ConsultationMessage) - before
    if errors:
        assert added == 0, (value, errors)
        LEDGER.note("page.portal_messages.write", "refused:" + _key(errors[0]))
    else:
        assert added == 1, value
        LEDGER.note("page.portal_messages.write", "stored")
