"""A cashier takes a payment and asks for a refund; a second cashier approves it (four eyes);
the first closes the day."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

import factories
from cims.billing.models import Invoice, Payment, Refund
from cims.patients.models import Patient
from cims.security.accounts import create_account
from cims.security.crypto import load_cipher
from cims.security.mfa import new_totp_secret
from cims.security.models import User
from journeys import choose, new_page, open_page, settled, sign_in_as

REASON = "Charged twice for the same blood test"
CASHIERS = {"till_wang": "Wang Fang (cashier)", "till_zhao": "Zhao Min (cashier)"}


@pytest.fixture(scope="module")
def cashiers(e2e_db: str) -> dict[str, str]:
    """Two finance accounts of their own, so this journey's day is not another test's day."""
    engine = create_engine(e2e_db)
    with Session(engine) as db:
        for username, name in CASHIERS.items():
            if db.scalar(select(User.id).where(User.username == username)) is None:
                create_account(
                    session=db, username=username, display_name=name,
                    password=factories.PASSWORD, roles=["finance"],
                    totp_secret=new_totp_secret(), cipher=load_cipher(db),
                )  # fmt: skip
        db.commit()
    engine.dispose()
    return CASHIERS


def _open_bill(url: str) -> tuple[str, str]:
    """(MRN, invoice number) of a patient without a portal account with one open bill."""
    engine = create_engine(url)
    with Session(engine) as db:
        portal = select(User.patient_id).where(User.patient_id.is_not(None))
        one_open = (
            select(Invoice.patient_id)
            .where(Invoice.status.in_(("issued", "partly_paid")), ~Invoice.voided)
            .group_by(Invoice.patient_id)
            .having(func.count() == 1)
        )
        mrn, invoice_no = db.execute(
            select(Patient.mrn, Invoice.invoice_no)
            .join(Invoice, Invoice.patient_id == Patient.id)
            .where(
                Patient.id.in_(one_open),
                Patient.id.not_in(portal),
                Invoice.status.in_(("issued", "partly_paid")),
                Invoice.patient_amount - Invoice.paid_amount >= Decimal("1.00"),
            )
            .order_by(Patient.id.desc())  # the booking journey takes the first one
            .limit(1)
        ).one()
    engine.dispose()
    return mrn, invoice_no


def test_cashier_takes_payment_refund_needs_a_second_approver_and_day_closes(
    server: str,
    e2e_db: str,
    browser: Browser,
    totp_for: Callable[[str], str],
    cashiers: dict[str, str],
    shots: Path,
) -> None:
    first, second = list(cashiers)
    mrn, invoice_no = _open_bill(e2e_db)
    page = new_page(browser, 1400, 1200)
    sign_in_as(page, server, first, factories.PASSWORD, totp_for(first))
    open_page(page, server, "cashier")
    page.get_by_role("textbox", name=re.compile("^Find a patient")).fill(mrn)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("Invoices", exact=True)).to_be_visible(timeout=30_000)
    settled(page)
    choose(page, "Invoice", re.compile(re.escape(invoice_no)))
    page.get_by_role("button", name="Take payment").click()
    expect(page.get_by_text("Payment taken.")).to_be_visible(timeout=30_000)
    settled(page)

    page.get_by_text("Request a refund").click()
    refund = page.get_by_test_id("stForm").filter(has_text="Reason for the refund")
    refund.get_by_role("textbox", name="Amount (¥)").fill("1.00")
    refund.get_by_role("textbox", name="Reason for the refund").fill(REASON)
    refund.get_by_role("button", name="Request refund").click()
    expect(page.get_by_text("waiting for a second person to approve")).to_be_visible(timeout=30_000)
    settled(page)
    # Four eyes: the cashier who asked is not offered their own refund to approve.
    expect(page.get_by_text(REASON)).to_have_count(0)

    approver = new_page(browser)
    sign_in_as(approver, server, second, factories.PASSWORD, totp_for(second))
    open_page(approver, server, "cashier")
    expect(approver.get_by_text("Refunds waiting for approval")).to_be_visible()
    row = approver.get_by_test_id("stHorizontalBlock").filter(has_text=REASON).first
    expect(row).to_contain_text(cashiers[first])
    approver.screenshot(path=str(shots / "cashier_refund_to_approve.png"), full_page=True)
    row.get_by_role("button", name="Approve").click()
    expect(approver.get_by_text("Refund approved and returned")).to_be_visible(timeout=30_000)
    settled(approver)
    expect(approver.get_by_text(REASON)).to_have_count(0)
    approver.context.close()

    open_page(page, server, "finance_settlement")
    expect(page.get_by_text("My net takings today")).to_be_visible()
    page.get_by_text("I have counted the cash and want to close the day").click()
    page.get_by_role("button", name="Close and lock the day").click()
    expect(page.get_by_text(re.compile("^Day closed"))).to_be_visible(timeout=30_000)
    settled(page)
    page.screenshot(path=str(shots / "cashier_day_closed.png"), full_page=True)
    page.context.close()

    engine = create_engine(e2e_db)
    with Session(engine) as db:
        done = db.execute(
            select(Refund, Payment)
            .join(Payment, Payment.id == Refund.payment_id)
            .where(Refund.reason == REASON)
        ).one()
        query = select(User.username, User.id).where(User.username.in_(cashiers))
        users = dict(db.execute(query).tuples().all())
    engine.dispose()
    refund_row, payment = done
    assert refund_row.status == "completed"
    assert refund_row.requested_by_id == users[first]
    assert refund_row.approved_by_id == users[second]
    assert refund_row.amount == Decimal("1.00")
    assert payment.status == "partly_refunded"
