"""A patient opens their own portal account from the sign-in screen, then signs in (AppTest)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest
from test_pages import ROOT, TIMEOUT

import factories
from cims.engagement.models import OutboxMessage
from cims.patients.resident_id import check_digit
from cims.patients.schemas import PatientInput
from cims.patients.service import register_patient
from cims.security.models import User


@pytest.fixture(scope="module")
def seeded_url(seeded_app_database: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """A small seeded demo hospital that the app under test is pointed at."""
    with seeded_app_database("portal_signup", patients=100, seed=17) as url:
        yield url


def _click(at: AppTest, label: str) -> AppTest:
    """The first button so labelled (the sign-up form comes before the reset form)."""
    button = next(b for b in at.button if b.label == label)
    return button.click().run()


def test_a_patient_opens_an_account_and_signs_in(seeded_url: str) -> None:
    first17 = "310101" + "19900704" + "882"
    national_id = first17 + check_digit(first17)
    engine = create_engine(seeded_url)
    with Session(engine) as db, db.begin():
        mrn = register_patient(
            session=db,
            actor=factories.actor(db, "registrar"),
            data=PatientInput(
                family_name="夏",
                given_name="雨婷",
                sex="F",
                birth_date=dt.date(1990, 7, 4),
                national_id=national_id,
                mobile="13812345670",
                insurance_type="self_pay",
            ),
            confirm_not_duplicate=True,
        ).mrn
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["lang"] = "en"
    at.run()
    at.text_input(key="signup_mrn").input(mrn)
    at.text_input(key="signup_proof").input(national_id)
    at = _click(at, "Send me a code")
    assert not at.exception, at.exception
    assert at.info[0].value.startswith("If the details match our records")
    with Session(engine) as db:
        pending = db.scalar(select(User).where(User.username.startswith("pending_")))
        assert pending is not None
        code = db.scalar(
            select(OutboxMessage.params["code"].astext).where(
                OutboxMessage.recipient == f"user:{pending.id}"
            )
        )
    at.text_input(key="signup_code").input(str(code))
    at.text_input(key="signup_username").input("xiayuting")
    at.text_input(key="signup_password").input("Summer-Rain-Walk-90")
    at = _click(at, "Open my account")
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == []
    assert at.success[0].value == "Your account is open: sign in above."

    at.text_input[0].input("xiayuting")
    at.text_input[1].input("Summer-Rain-Walk-90")
    at.button[0].click().run()
    at.run()
    assert not at.exception, at.exception
    assert any("夏雨婷" in t.value for t in at.title), [t.value for t in at.title]
    engine.dispose()
