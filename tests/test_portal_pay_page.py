"""A patient pays a bill in the portal through the sandbox checkout (AppTest)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest
from test_pages import _signed_in_page

from cims.base import utcnow
from cims.billing.models import Invoice, Payment
from cims.billing.online import reconcile
from cims.billing.sandbox import SandboxProvider
from cims.security.models import User

PAGE = "pages/portal_pay.py"


@pytest.fixture(scope="module")
def seeded_url(seeded_app_database: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """A small seeded demo hospital that the app under test is pointed at."""
    with seeded_app_database("portal_pay", patients=200, seed=13) as url:
        yield url


def _click(at: AppTest, label: str) -> AppTest:
    [button] = [b for b in at.button if b.label == label]
    return button.click().run()


def _an_open_bill(url: str) -> Invoice:
    engine = create_engine(url)
    with Session(engine, expire_on_commit=False) as db, db.begin():
        patient_id = db.scalar(select(User.patient_id).where(User.username == "patient"))
        invoice = db.scalar(
            select(Invoice)
            .where(Invoice.patient_id == patient_id, Invoice.status.in_(("issued", "partly_paid")))
            .order_by(Invoice.id)
        )
        assert invoice is not None, "the demo patient owes something"
    engine.dispose()
    return invoice


def test_patient_pays_through_the_sandbox_checkout(seeded_url: str) -> None:
    invoice = _an_open_bill(seeded_url)
    at = _signed_in_page(seeded_url, "patient", PAGE)
    assert not at.exception and at.title[0].value == "Pay my bills"
    pay = [b for b in at.button if b.label.startswith("Pay ¥")]
    assert pay, [b.label for b in at.button]
    at = pay[0].click().run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [] and at.subheader, at.markdown
    assert at.subheader[0].value == "WeChat Pay checkout"
    at = _click(at, "Pay now")
    assert not at.exception, at.exception
    # No web server runs under AppTest, so the provider's callback cannot arrive: the page
    # waits, and reconciliation settles the payment from the provider's own records.
    assert at.info[0].value.startswith("Waiting for the payment provider")
    engine = create_engine(seeded_url)
    with Session(engine) as db, db.begin():
        report = reconcile(db, SandboxProvider(), now=utcnow() + dt.timedelta(minutes=5))
    assert report.settled_from_query >= 1
    at = _click(at, "Refresh")
    assert at.success[0].value.startswith("Payment received")
    with Session(engine) as db:
        paid = db.scalar(
            select(Payment).where(Payment.provider == "sandbox", Payment.status == "succeeded")
        )
        assert paid is not None and paid.invoice_id == invoice.id
        assert db.get(Invoice, invoice.id).status == "paid"  # type: ignore[union-attr]
    engine.dispose()
