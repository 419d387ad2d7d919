"""Refunds: requested by one person, approved by another, reversed through the original method.

Approval completes the refund at once: the payment's refunded amount grows, the invoice's
paid amount shrinks and its status is recomputed. Nothing is ever refunded beyond what was
paid: a request counts the refunds already waiting, and approval re-checks under the same
locks as payments (invoice row, then payment row). The approver must be someone else (the
``four_eyes`` CHECK backs the service's refusal). The refund's method is its payment's;
``provider_reference`` records the reversal (``<method>:R<refund id>``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.billing.catalogue import BillingRefused, to_money
from cims.billing.invoices import lock_invoice, status_for
from cims.billing.models import Payment, Refund
from cims.billing.payments import MAX_KEY, hold_open_day
from cims.clock import local_today, to_local
from cims.security import audit
from cims.security.models import User
from cims.security.rbac import Actor, Privilege, requires

REFUNDABLE: Final = ("succeeded", "partly_refunded")


@dataclass(frozen=True)
class RefundView:
    """A refund as the cashier sees it (method of the original payment)."""

    refund_id: int
    payment_id: int
    invoice_id: int
    method: str
    amount: Decimal
    reason: str
    status: str
    requested_by: str
    requested_by_id: int
    requested_at: dt.datetime | None  # hospital-local


def _locked_payment(session: Session, payment_id: int) -> Payment:
    # FOR NO KEY UPDATE, as settling a payment does: a provider callback's payment_events
    # insert holds FOR KEY SHARE on the payment (its foreign key) while it waits for the
    # invoice this transaction holds; FOR UPDATE would wait for it, and it for us.
    payment = session.scalar(
        select(Payment)
        .where(Payment.id == payment_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    if payment is None:
        raise BillingRefused("billing.payment_not_found")
    return payment


def _waiting(session: Session, payment_id: int) -> Decimal:
    total = session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.payment_id == payment_id, Refund.status.in_(("requested", "approved"))
        )
    )
    return Decimal(total or 0)


@requires(Privilege.TAKE_PAYMENTS)
def request_refund(
    *,
    session: Session,
    actor: Actor,
    payment_id: int,
    amount: Decimal,
    reason: str,
    idempotency_key: str,
) -> Refund:
    """Ask for (part of) a payment back; a second person must approve it."""
    value = to_money(amount)
    why = (reason or "").strip()
    if value <= 0:
        raise BillingRefused("billing.amount_invalid")
    if not why:
        raise BillingRefused("billing.reason_required")
    if not idempotency_key or len(idempotency_key) > MAX_KEY:  # the key is unique-indexed
        raise BillingRefused("billing.key_invalid")
    first = session.get(Payment, payment_id)
    if first is None:
        raise BillingRefused("billing.payment_not_found")
    lock_invoice(session, first.invoice_id)
    payment = _locked_payment(session, payment_id)
    found = session.scalar(select(Refund).where(Refund.idempotency_key == idempotency_key))
    if found is not None:
        if found.payment_id != payment_id or found.amount != value:
            raise BillingRefused("billing.key_reused")
        return found
    if payment.status not in REFUNDABLE:
        raise BillingRefused("billing.payment_not_refundable")
    left = payment.amount - payment.refunded_amount - _waiting(session, payment_id)
    if value > left:
        raise BillingRefused("billing.refund_too_much", left=str(max(left, Decimal("0.00"))))
    refund = Refund(
        payment_id=payment_id,
        amount=value,
        reason=why,
        status="requested",
        requested_by_id=actor.user_id,
        requested_at=utcnow(),
        idempotency_key=idempotency_key,
        created_by_id=actor.user_id,
    )
    try:
        with session.begin_nested():
            session.add(refund)
            session.flush()
    except IntegrityError as clash:
        raise BillingRefused("billing.key_reused") from clash
    audit.record(
        session,
        actor,
        "billing.request_refund",
        patient_id=payment.patient_id,
        object_type="refund",
        object_id=refund.id,
        detail={"amount": str(value), "method": payment.method},
    )
    return refund


def _locked_refund(session: Session, refund_id: int) -> tuple[Refund, Payment]:
    first = session.get(Refund, refund_id)
    if first is None:
        raise BillingRefused("billing.refund_not_found")
    payment = session.get(Payment, first.payment_id)
    assert payment is not None
    lock_invoice(session, payment.invoice_id)
    payment = _locked_payment(session, first.payment_id)
    refund = session.scalar(
        select(Refund)
        .where(Refund.id == refund_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert refund is not None
    if refund.status != "requested":
        raise BillingRefused("billing.refund_not_waiting")
    return refund, payment


@requires(Privilege.APPROVE_REFUNDS)
def approve_refund(*, session: Session, actor: Actor, refund_id: int) -> Refund:
    """A second person approves: the money goes back through the payment's own method."""
    # The approver pays the money out: their open day is share-locked before the invoice and
    # payment rows, so closing the day (which then updates payments) cannot deadlock with it.
    hold_open_day(session, actor.user_id, local_today())
    refund, payment = _locked_refund(session, refund_id)
    if refund.requested_by_id == actor.user_id:
        raise BillingRefused("billing.refund_same_person")
    if payment.amount - payment.refunded_amount < refund.amount:
        raise BillingRefused(
            "billing.refund_too_much", left=str(payment.amount - payment.refunded_amount)
        )
    invoice = lock_invoice(session, payment.invoice_id)
    now = utcnow()
    payment.refunded_amount = payment.refunded_amount + refund.amount
    payment.status = "refunded" if payment.refunded_amount >= payment.amount else "partly_refunded"
    payment.updated_by_id = actor.user_id
    invoice.paid_amount = invoice.paid_amount - refund.amount
    if invoice.status != "void":
        invoice.status = status_for(invoice)
    invoice.updated_by_id = actor.user_id
    refund.status = "completed"
    refund.approved_by_id = actor.user_id
    refund.approved_at = now
    refund.completed_at = now
    refund.provider_reference = f"{payment.method}:R{refund.id}"
    refund.updated_by_id = actor.user_id
    session.flush()
    audit.record(
        session,
        actor,
        "billing.approve_refund",
        patient_id=payment.patient_id,
        object_type="refund",
        object_id=refund.id,
        detail={"amount": str(refund.amount), "method": payment.method},
    )
    return refund


@requires(Privilege.APPROVE_REFUNDS)
def reject_refund(*, session: Session, actor: Actor, refund_id: int) -> Refund:
    """A second person turns a refund request down; nothing moves."""
    refund, payment = _locked_refund(session, refund_id)
    if refund.requested_by_id == actor.user_id:
        raise BillingRefused("billing.refund_same_person")
    refund.status = "rejected"
    refund.approved_by_id = actor.user_id  # the person who decided
    refund.approved_at = utcnow()
    refund.updated_by_id = actor.user_id
    session.flush()
    audit.record(
        session,
        actor,
        "billing.reject_refund",
        patient_id=payment.patient_id,
        object_type="refund",
        object_id=refund.id,
    )
    return refund


@requires(Privilege.VIEW_BILLING)
def list_waiting_refunds(*, session: Session, actor: Actor) -> list[RefundView]:
    """Refund requests waiting for a second person, oldest first."""
    rows = session.execute(
        select(Refund, Payment, User.display_name)
        .join(Payment, Payment.id == Refund.payment_id)
        .join(User, User.id == Refund.requested_by_id)
        .where(Refund.status == "requested")
        .order_by(Refund.requested_at)
    ).all()
    audit.record(
        session, actor, "billing.list_refunds", object_type="refund", detail={"count": len(rows)}
    )
    return [
        RefundView(
            refund_id=refund.id,
            payment_id=payment.id,
            invoice_id=payment.invoice_id,
            method=payment.method,
            amount=refund.amount,
            reason=refund.reason,
            status=refund.status,
            requested_by=name,
            requested_by_id=refund.requested_by_id,
            requested_at=to_local(refund.requested_at),
        )
        for refund, payment, name in rows
    ]
