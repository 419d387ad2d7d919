"""The cashier and settlement pages through AppTest, signed in as the demo cashier."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest
from test_pages import _signed_in_page

import factories
from cims.billing.models import Invoice, Payment, Refund
from cims.patients.models import Patient
from cims.security.models import User

CASHIER = "pages/cashier.py"
SETTLEMENT = "pages/finance_settlement.py"


@pytest.fixture(scope="module")
def seeded_url(seeded_app_database: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """A small seeded demo hospital (with invoices and today's payments)."""
    with seeded_app_database("cashier_pages", patients=200, seed=11) as url:
        yield url


def _db(url: str) -> Session:
    return Session(create_engine(url))


def _open_invoice(url: str) -> tuple[int, str, Decimal]:
    """An issued, unpaid invoice of a live patient: (invoice id, MRN, balance)."""
    with _db(url) as db:
        invoice, mrn = db.execute(
            select(Invoice, Patient.mrn)
            .join(Patient, Patient.id == Invoice.patient_id)
            .where(Invoice.status == "issued", Invoice.patient_amount > 10)
            .order_by(Invoice.id)
            .limit(1)
        ).one()
        return invoice.id, mrn, invoice.patient_amount - invoice.paid_amount


def _payments(url: str, invoice_id: int) -> list[Payment]:
    with _db(url) as db:
        return list(db.scalars(select(Payment).where(Payment.invoice_id == invoice_id)))


def _click(at: AppTest, label: str) -> AppTest:
    [button] = [b for b in at.button if b.label == label]
    return button.click().run()


def _find(url: str, mrn: str, invoice_id: int | None = None) -> AppTest:
    """The cashier page with the patient found (and one of their invoices chosen)."""
    at = _signed_in_page(url, "finance", CASHIER)
    assert not at.exception and at.title[0].value == "Cashier"
    at.text_input(key="cashier_query").input(mrn)
    at = _click(at, "Search")
    assert not at.exception, at.exception
    if invoice_id is not None:
        [choice] = [s for s in at.selectbox if s.label == "Invoice"]
        at = choice.set_value(invoice_id).run()
    return at


def test_cashier_takes_a_part_payment_once_even_when_clicked_twice(seeded_url: str) -> None:
    invoice_id, mrn, balance = _open_invoice(seeded_url)
    at = _find(seeded_url, mrn, invoice_id)
    amount = at.text_input(key=f"cashier_amount_{invoice_id}")
    assert amount.value == str(balance)  # prefilled with what is owed
    amount.input("5.00")
    at.radio[0].set_value("wechat")
    at = _click(at, "Take payment")
    assert not at.exception, at.exception
    assert [s.value for s in at.success] == ["Payment taken."]
    paid = _payments(seeded_url, invoice_id)
    assert [(p.amount, p.method) for p in paid] == [(Decimal("5.00"), "wechat")]
    # A second click on the same form resends the same key: nothing new is charged.
    at = _click(at, "Take payment")
    assert not at.exception, at.exception
    assert len(_payments(seeded_url, invoice_id)) == 1
    # A new payment for more than is owed is refused with the balance in the message.
    at = _click(at, "New one")
    at.text_input(key=f"cashier_amount_{invoice_id}").input(str(balance))
    at = _click(at, "Take payment")
    left = balance - Decimal("5.00")
    assert [e.value for e in at.error] == [f"The amount exceeds the balance due ({left}); refused."]
    assert len(_payments(seeded_url, invoice_id)) == 1


def test_cashier_invoices_new_charges_and_issues_the_invoice(seeded_url: str) -> None:
    engine = create_engine(seeded_url)
    with Session(engine) as db, db.begin():
        patient = factories.patient(db, insurance_type="self_pay")
        factories.price_item(db, "PAGE-ITEM", unit_price="18.00")
        from cims.billing.charges import post_charge
        from cims.clock import local_today

        post_charge(
            session=db, actor=factories.actor(db, "finance"), patient_id=patient.id,
            encounter_id=None, price_code="PAGE-ITEM", quantity=Decimal("2"),
            source_type="manual", source_id=None, service_date=local_today(),
        )  # fmt: skip
        mrn = patient.mrn
    engine.dispose()
    at = _find(seeded_url, mrn)
    assert "No invoices yet." in [c.value for c in at.caption]
    at = _click(at, "Create invoice")
    assert [s.value for s in at.success] == ["Draft invoice created."]
    at = _click(at, "Issue invoice")
    assert [s.value for s in at.success] == ["Invoice issued."]
    assert not [b for b in at.button if b.label == "Issue invoice"]
    assert any("balance ¥36.00" in m.value for m in at.markdown)


def test_a_refund_requested_at_the_counter_is_approved_by_a_second_cashier(
    seeded_url: str,
) -> None:
    engine = create_engine(seeded_url)
    with Session(engine) as db, db.begin():
        factories.user(db, "finance", username="cashier_two")
        invoice_id = factories.issued_invoice(db, amount="30.00")
        mrn = db.scalar(
            select(Patient.mrn)
            .join(Invoice, Invoice.patient_id == Patient.id)
            .where(Invoice.id == invoice_id)
        )
    engine.dispose()
    assert mrn is not None
    at = _find(seeded_url, mrn)
    at = _click(at, "Take payment")
    assert [s.value for s in at.success] == ["Payment taken."]
    at.text_input(key="cashier_refund_amount").input("10.00")
    at.text_input(key="cashier_refund_reason").input("charged the wrong item")
    at = _click(at, "Request refund")
    assert [s.value for s in at.success] == [
        "Refund requested; waiting for a second person to approve."
    ]
    # The requester is not offered their own request; the second cashier approves it.
    assert not [b for b in at.button if b.label == "Approve"]
    other = _signed_in_page(seeded_url, "cashier_two", CASHIER)
    [refund_id] = [
        int(b.key.rsplit("_", 1)[1]) for b in other.button if b.label == "Approve" and b.key
    ]
    other = other.button(key=f"cashier_approve_{refund_id}").click().run()
    assert [s.value for s in other.success] == [
        "Refund approved and returned through the original method."
    ]
    with _db(seeded_url) as db:
        refund = db.get(Refund, refund_id)
        invoice = db.get(Invoice, invoice_id)
        assert refund is not None and refund.status == "completed"
        assert invoice is not None and invoice.paid_amount == Decimal("20.00")
        assert invoice.status == "partly_paid"


def test_settlement_shows_my_takings_then_closes_and_locks_the_day(seeded_url: str) -> None:
    from cims.billing.settlement import settlement_preview
    from cims.clock import local_today
    from cims.security.accounts import build_actor

    with _db(seeded_url) as db:
        me = db.scalar(select(User).where(User.username == "finance"))
        assert me is not None
        me_id = me.id
        expected = settlement_preview(session=db, actor=build_actor(db, me), day=local_today())
        db.rollback()
    assert expected.payment_count > 0  # the demo cashier took payments this morning
    at = _signed_in_page(seeded_url, "finance", SETTLEMENT)
    assert not at.exception and at.title[0].value == "Daily settlement"
    assert at.metric[0].value == f"¥{expected.total:,.2f}"
    at.text_input(key="settle_cash").input(str(expected.expected["cash"] - Decimal("1.00")))
    at = _click(at, "Close and lock the day")
    assert [w.value for w in at.warning] == ["Tick the confirmation first."]
    at.checkbox(key="settle_confirm").check()
    at = _click(at, "Close and lock the day")
    assert not at.exception, at.exception
    assert [s.value for s in at.success] == [
        "Day closed: 1 payment methods differ from the count and are flagged."
    ]
    assert at.info and at.info[0].value.startswith("Today is closed")
    with _db(seeded_url) as db:
        linked = db.scalar(
            select(func.count()).where(
                Payment.cashier_id == me_id, Payment.settlement_id.is_not(None)
            )
        )
    assert linked == expected.payment_count
    # After closing, the cashier cannot take money today.
    invoice_id, mrn, _ = _open_invoice(seeded_url)
    at = _find(seeded_url, mrn, invoice_id)
    at.text_input(key=f"cashier_amount_{invoice_id}").input("1.00")
    at = _click(at, "Take payment")
    assert [e.value for e in at.error] == [
        "Your day is closed: no more payments or refunds can be taken today."
    ]
