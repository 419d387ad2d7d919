"""Payments against invoices: never lost, never doubled, never more than is owed.

Every payment carries an idempotency key (unique in the database). Taking a payment locks
the invoice row (``SELECT ... FOR UPDATE``), so payments on one invoice are applied one at
a time against a fresh balance; the key is checked after the lock, so a retry or a double
click returns the payment already made and changes nothing. A key reused for a different
invoice or amount is refused; a race on the unique key is caught in a savepoint.

A cashier's takings belong to their day (日结): while taking a payment the cashier's
settlement row for today is held ``FOR SHARE``, and closing the day takes it ``FOR UPDATE``,
so no payment slips into a day after it was closed.

Electronic payment (the provider and its callback are built on these two functions):

- ``start_provider_payment`` / ``start_my_provider_payment`` create a *pending* payment
  (not yet in ``paid_amount``) with its idempotency key, for a cashier or a portal patient.
- ``settle_provider_payment(session=, payment_id=, succeeded=, provider_reference=)`` is
  what the provider callback calls (no actor). It applies a pending payment to its invoice
  exactly once; duplicate or late callbacks of a settled payment change nothing; a payment
  that would now overpay (the bill was paid meanwhile) is marked failed.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Final

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.billing.catalogue import BillingRefused, to_money
from cims.billing.invoices import PAYABLE, lock_invoice, status_for
from cims.billing.models import PAYMENT_METHODS, DailySettlement, Invoice, Payment
from cims.clock import local_today
from cims.security import audit
from cims.security.rbac import Actor, Privilege, requires

COUNTED: Final = ("succeeded", "partly_refunded", "refunded")  # money that was received
MAX_KEY: Final = 200


def hold_open_day(session: Session, cashier_id: int, day: dt.date) -> None:
    """Share-lock the cashier's settlement row for ``day``; refused once the day is closed."""
    session.execute(
        insert(DailySettlement)
        .values(cashier_id=cashier_id, business_date=day, status="open")
        .on_conflict_do_nothing(index_elements=["cashier_id", "business_date"])
    )
    status = session.scalar(
        select(DailySettlement.status)
        .where(DailySettlement.cashier_id == cashier_id, DailySettlement.business_date == day)
        .with_for_update(read=True)
    )
    if status == "closed":
        raise BillingRefused("billing.day_closed")


def _check_input(amount: object, method: str, idempotency_key: str) -> Decimal:
    value = to_money(amount)
    if value <= 0:
        raise BillingRefused("billing.amount_invalid")
    if method not in PAYMENT_METHODS:
        raise BillingRefused("billing.method_invalid")
    if not idempotency_key or len(idempotency_key) > MAX_KEY:
        raise BillingRefused("billing.key_invalid")
    return value


def _by_key(session: Session, key: str) -> Payment | None:
    return session.scalar(
        select(Payment)
        .where(Payment.idempotency_key == key)
        .execution_options(populate_existing=True)
    )


def _replay(found: Payment, invoice_id: int, amount: Decimal, method: str) -> Payment:
    """The payment made under this key before, if the request is the same one."""
    if found.invoice_id != invoice_id or found.amount != amount or found.method != method:
        raise BillingRefused("billing.key_reused")
    return found


def _payable(invoice: Invoice, amount: Decimal) -> None:
    if invoice.voided or invoice.status not in PAYABLE:
        key = "billing.invoice_paid" if invoice.status == "paid" else "billing.invoice_not_payable"
        raise BillingRefused(key)
    balance = invoice.patient_amount - invoice.paid_amount
    if amount > balance:
        raise BillingRefused("billing.overpayment", balance=str(balance))


def _insert(session: Session, payment: Payment) -> Payment | None:
    """Insert in a savepoint; None when another transaction took the key first."""
    try:
        with session.begin_nested():
            session.add(payment)
            session.flush()
    except IntegrityError:
        return None
    return payment


def _apply(invoice: Invoice, amount: Decimal, actor_id: int | None) -> None:
    invoice.paid_amount = invoice.paid_amount + amount
    invoice.status = status_for(invoice)
    invoice.updated_by_id = actor_id


@requires(Privilege.TAKE_PAYMENTS)
def take_payment(
    *,
    session: Session,
    actor: Actor,
    invoice_id: int,
    amount: Decimal,
    method: str,
    idempotency_key: str,
    provider: str | None = None,
    provider_reference: str | None = None,
) -> Payment:
    """Take money at the counter; a retry with the same key returns the first payment."""
    value = _check_input(amount, method, idempotency_key)
    invoice = lock_invoice(session, invoice_id)
    found = _by_key(session, idempotency_key)
    if found is not None:
        return _replay(found, invoice_id, value, method)
    _payable(invoice, value)
    hold_open_day(session, actor.user_id, local_today())
    now = utcnow()
    payment = _insert(
        session,
        Payment(
            invoice_id=invoice.id,
            patient_id=invoice.patient_id,
            method=method,
            amount=value,
            status="succeeded",
            idempotency_key=idempotency_key,
            provider=provider,
            provider_reference=provider_reference,
            received_at=now,
            cashier_id=actor.user_id,
            created_by_id=actor.user_id,
        ),
    )
    if payment is None:  # same key on another invoice, committed meanwhile
        raced = _by_key(session, idempotency_key)
        if raced is None:
            raise BillingRefused("billing.key_reused")
        return _replay(raced, invoice_id, value, method)
    _apply(invoice, value, actor.user_id)
    session.flush()
    audit.record(
        session,
        actor,
        "billing.take_payment",
        patient_id=invoice.patient_id,
        object_type="payment",
        object_id=payment.id,
        detail={"method": method, "amount": str(value), "invoice_id": invoice.id},
    )
    return payment


def _start_pending(
    session: Session,
    actor: Actor,
    *,
    invoice_id: int,
    amount: Decimal,
    method: str,
    idempotency_key: str,
    provider: str,
    for_patient: int | None,
) -> Payment:
    value = _check_input(amount, method, idempotency_key)
    invoice = lock_invoice(session, invoice_id)
    if for_patient is not None and invoice.patient_id != for_patient:
        raise BillingRefused("billing.invoice_not_found")
    found = _by_key(session, idempotency_key)
    if found is not None:
        return _replay(found, invoice_id, value, method)
    _payable(invoice, value)
    payment = _insert(
        session,
        Payment(
            invoice_id=invoice.id,
            patient_id=invoice.patient_id,
            method=method,
            amount=value,
            status="pending",
            idempotency_key=idempotency_key,
            provider=provider,
            received_at=utcnow(),
            cashier_id=None if for_patient is not None else actor.user_id,
            created_by_id=actor.user_id,
        ),
    )
    if payment is None:
        raced = _by_key(session, idempotency_key)
        if raced is None:
            raise BillingRefused("billing.key_reused")
        return _replay(raced, invoice_id, value, method)
    audit.record(
        session,
        actor,
        "billing.start_provider_payment",
        patient_id=invoice.patient_id,
        object_type="payment",
        object_id=payment.id,
        detail={"method": method, "amount": str(value), "provider": provider},
    )
    return payment


@requires(Privilege.TAKE_PAYMENTS)
def start_provider_payment(
    *,
    session: Session,
    actor: Actor,
    invoice_id: int,
    amount: Decimal,
    method: str,
    idempotency_key: str,
    provider: str,
) -> Payment:
    """A pending electronic payment started at the counter (QR code, POS); not yet paid."""
    return _start_pending(
        session,
        actor,
        invoice_id=invoice_id,
        amount=amount,
        method=method,
        idempotency_key=idempotency_key,
        provider=provider,
        for_patient=None,
    )


@requires(Privilege.PORTAL_SELF)
def start_my_provider_payment(
    *,
    session: Session,
    actor: Actor,
    invoice_id: int,
    amount: Decimal,
    method: str,
    idempotency_key: str,
    provider: str,
) -> Payment:
    """A patient starts paying one of their own invoices online; pending until the callback."""
    if actor.patient_id is None:
        raise BillingRefused("billing.invoice_not_found")
    return _start_pending(
        session,
        actor,
        invoice_id=invoice_id,
        amount=amount,
        method=method,
        idempotency_key=idempotency_key,
        provider=provider,
        for_patient=actor.patient_id,
    )


def settle_provider_payment(
    *, session: Session, payment_id: int, succeeded: bool, provider_reference: str | None
) -> Payment:
    """Apply a provider's verdict on a pending payment exactly once (called by the callback).

    Succeeded: counted in the invoice's paid amount, unless it would now overpay or the
    invoice is no longer payable, in which case the payment is marked failed. Declined:
    failed. A payment no longer pending is returned unchanged (duplicate or late callback).
    """
    first = session.get(Payment, payment_id)
    if first is None:
        raise BillingRefused("billing.payment_not_found")
    invoice = lock_invoice(session, first.invoice_id)  # invoice before payment, as everywhere
    # FOR NO KEY UPDATE: a concurrent callback's payment_events insert holds FOR KEY SHARE on
    # this row (its foreign key) while it waits for the invoice; FOR UPDATE would deadlock.
    payment = session.scalar(
        select(Payment)
        .where(Payment.id == payment_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    assert payment is not None
    if payment.status != "pending":
        return payment
    outcome = "failed"
    if succeeded:
        try:
            _payable(invoice, payment.amount)
        except BillingRefused:
            outcome = "failed"
        else:
            outcome = "succeeded"
            _apply(invoice, payment.amount, None)
    payment.status = outcome
    payment.provider_reference = provider_reference or payment.provider_reference
    if outcome == "succeeded":
        payment.received_at = utcnow()
    session.flush()
    audit.record(
        session,
        None,
        "billing.settle_provider_payment",
        patient_id=payment.patient_id,
        object_type="payment",
        object_id=payment.id,
        detail={"outcome": outcome, "reported": "succeeded" if succeeded else "declined"},
        username=f"provider:{payment.provider or 'unknown'}",
    )
    return payment
