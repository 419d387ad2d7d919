"""Refunds need a second person; a cashier's day adds up and, once closed, stays closed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import factories
from cims.billing import payments, refunds, settlement
from cims.billing.catalogue import BillingRefused
from cims.billing.models import DailySettlement, Invoice, Payment, Refund
from cims.clock import local_today
from cims.security.rbac import AccessDenied, Actor

D = Decimal


def _paid(
    session: Session, cashier: Actor, amount: str = "100.00", method: str = "card"
) -> Payment:
    invoice_id = factories.issued_invoice(session, amount=amount)
    return payments.take_payment(
        session=session, actor=cashier, invoice_id=invoice_id, amount=D(amount), method=method,
        idempotency_key=f"pay-{invoice_id}",
    )  # fmt: skip


def _ask(session: Session, cashier: Actor, payment: Payment, amount: str, key: str) -> Refund:
    return refunds.request_refund(
        session=session, actor=cashier, payment_id=payment.id, amount=D(amount),
        reason="duplicate test", idempotency_key=key,
    )  # fmt: skip


def test_a_refund_needs_a_second_person_and_reverses_through_the_method(
    session: Session,
) -> None:
    cashier = factories.actor(session, "finance")
    supervisor = factories.actor(session, "finance")
    payment = _paid(session, cashier, "100.00", "wechat")
    refund = _ask(session, cashier, payment, "40.00", "r-1")
    assert refund.status == "requested"
    with pytest.raises(BillingRefused, match=r"billing\.refund_same_person"):
        refunds.approve_refund(session=session, actor=cashier, refund_id=refund.id)
    waiting = refunds.list_waiting_refunds(session=session, actor=supervisor)
    assert [(w.refund_id, w.method) for w in waiting if w.refund_id == refund.id] == [
        (refund.id, "wechat")
    ]
    refunds.approve_refund(session=session, actor=supervisor, refund_id=refund.id)
    invoice = session.get(Invoice, payment.invoice_id)
    assert invoice is not None
    assert refund.status == "completed" and refund.approved_by_id == supervisor.user_id
    assert refund.provider_reference == f"wechat:R{refund.id}"
    assert payment.refunded_amount == D("40.00") and payment.status == "partly_refunded"
    assert invoice.paid_amount == D("60.00") and invoice.status == "partly_paid"
    with pytest.raises(BillingRefused, match=r"billing\.refund_not_waiting"):
        refunds.approve_refund(session=session, actor=supervisor, refund_id=refund.id)
    rest = _ask(session, cashier, payment, "60.00", "r-2")
    refunds.approve_refund(session=session, actor=supervisor, refund_id=rest.id)
    assert payment.status == "refunded" and invoice.paid_amount == 0
    assert invoice.status == "issued"


def test_the_database_refuses_a_self_approved_refund(session: Session) -> None:
    cashier = factories.actor(session, "finance")
    refund = _ask(session, cashier, _paid(session, cashier), "10.00", "r-db")
    refund.approved_by_id = cashier.user_id
    with pytest.raises(IntegrityError, match="four_eyes"), session.begin_nested():
        session.flush()


def test_never_more_is_refunded_than_was_paid(session: Session) -> None:
    cashier = factories.actor(session, "finance")
    payment = _paid(session, cashier, "50.00")
    _ask(session, cashier, payment, "30.00", "r-3")
    with pytest.raises(BillingRefused) as refused:
        _ask(session, cashier, payment, "20.01", "r-4")  # 30.00 already waiting
    assert refused.value.key == "billing.refund_too_much" and refused.value.params == {
        "left": "20.00"
    }
    for amount, reason, key in (("0", "x", "r-5"), ("5", " ", "r-6")):
        with pytest.raises(BillingRefused):
            refunds.request_refund(
                session=session, actor=cashier, payment_id=payment.id, amount=D(amount),
                reason=reason, idempotency_key=key,
            )  # fmt: skip
    again = _ask(session, cashier, payment, "30.00", "r-3")  # a retry returns the request
    assert session.scalar(select(func.count()).where(Refund.payment_id == payment.id)) == 1
    assert again.amount == D("30.00")


def test_a_rejected_refund_moves_no_money_and_only_approvers_decide(session: Session) -> None:
    cashier = factories.actor(session, "finance")
    payment = _paid(session, cashier, "20.00")
    refund = _ask(session, cashier, payment, "20.00", "r-7")
    with pytest.raises(AccessDenied):
        refunds.approve_refund(
            session=session, actor=factories.actor(session, "manager"), refund_id=refund.id
        )
    refunds.reject_refund(
        session=session, actor=factories.actor(session, "finance"), refund_id=refund.id
    )
    assert refund.status == "rejected" and payment.refunded_amount == 0
    assert payment.status == "succeeded"


def test_settlement_totals_equal_the_payments_and_refunds_of_the_day(session: Session) -> None:
    cashier = factories.actor(session, "finance")
    supervisor = factories.actor(session, "finance")
    taken = [
        _paid(session, cashier, amount, method)
        for amount, method in (
            ("100.00", "cash"), ("25.50", "cash"), ("80.00", "card"), ("12.34", "alipay"),
        )
    ]  # fmt: skip
    _paid(session, supervisor, "999.00", "cash")  # someone else's drawer
    refunded = _ask(session, cashier, taken[2], "30.00", "r-8")
    refunds.approve_refund(session=session, actor=supervisor, refund_id=refunded.id)
    today = local_today()
    mine = settlement.settlement_preview(session=session, actor=cashier, day=today)
    assert mine.received["cash"] == D("125.50") and mine.received["card"] == D("80.00")
    assert mine.expected["alipay"] == D("12.34") and mine.payment_count == 4
    assert mine.total == sum((p.amount for p in taken), D("0")) == D("217.84")
    theirs = settlement.settlement_preview(session=session, actor=supervisor, day=today)
    assert theirs.refunded["card"] == D("30.00")  # the approver paid it out
    assert theirs.expected["cash"] == D("999.00") and theirs.expected["card"] == D("-30.00")


def test_closing_the_day_flags_differences_links_payments_and_locks(session: Session) -> None:
    cashier = factories.actor(session, "finance")
    taken = [_paid(session, cashier, "100.00", "cash"), _paid(session, cashier, "40.00", "card")]
    waiting = factories.issued_invoice(session, amount="10.00")
    today = local_today()
    closed = settlement.close_day(
        session=session, actor=cashier, day=today, counted={"cash": D("95.00")}
    )
    assert closed.status == "closed" and closed.differences == {"cash": D("-5.00")}
    assert closed.counted["card"] == D("40.00")  # electronic methods match the provider
    row = session.scalar(
        select(DailySettlement).where(
            DailySettlement.cashier_id == cashier.user_id, DailySettlement.business_date == today
        )
    )
    assert row is not None and row.status == "closed"
    assert row.totals is not None and row.totals["differences"] == {"cash": "-5.00"}
    session.expire_all()
    assert {p.settlement_id for p in (session.get(Payment, t.id) for t in taken) if p} == {row.id}
    with pytest.raises(BillingRefused, match=r"billing\.day_closed"):
        payments.take_payment(
            session=session, actor=cashier, invoice_id=waiting, amount=D("10.00"),
            method="cash", idempotency_key="after-close",
        )  # fmt: skip
    with pytest.raises(BillingRefused, match=r"billing\.day_already_closed"):
        settlement.close_day(session=session, actor=cashier, day=today, counted={})
    other = factories.actor(session, "finance")  # another cashier's drawer is still open
    payments.take_payment(
        session=session, actor=other, invoice_id=waiting, amount=D("10.00"), method="cash",
        idempotency_key="other-drawer",
    )  # fmt: skip


def test_bad_close_requests_are_refused(session: Session) -> None:
    cashier = factories.actor(session, "finance")
    today = local_today()
    for day, counted, key in (
        (today + dt.timedelta(days=1), {}, "billing.day_in_future"),
        (today, {"gold": D("1")}, "billing.method_invalid"),
        (today, {"cash": D("-1")}, "billing.amount_invalid"),
    ):
        with pytest.raises(BillingRefused, match=key):
            settlement.close_day(session=session, actor=cashier, day=day, counted=counted)
    with pytest.raises(AccessDenied):
        settlement.close_day(
            session=session, actor=factories.actor(session, "nurse"), day=today, counted={}
        )
