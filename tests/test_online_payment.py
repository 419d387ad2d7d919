"""Electronic payment with the sandbox provider: success, decline, timeout, duplicate, late
and forged callbacks, and reconciliation in both directions."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import factories
from cims.base import utcnow
from cims.billing.catalogue import BillingRefused
from cims.billing.models import Invoice, Payment, PaymentEvent
from cims.billing.online import handle_callback, reconcile, start_online_payment
from cims.billing.sandbox import SandboxProvider, sign
from cims.security.rbac import AccessDenied, Actor


def _invoice(session: Session, patient_id: int, amount: str = "120.00") -> Invoice:
    invoice = Invoice(
        invoice_no=f"T{utcnow().timestamp():.6f}",
        patient_id=patient_id,
        status="issued",
        issued_at=utcnow(),
        total_amount=Decimal(amount),
        insurance_amount=Decimal("0"),
        patient_amount=Decimal(amount),
        paid_amount=Decimal("0"),
    )
    session.add(invoice)
    session.flush()
    return invoice


@pytest.fixture
def portal(session: Session) -> tuple[Actor, Invoice]:
    patient = factories.patient(session)
    actor = factories.actor(session, "patient", patient_id=patient.id)
    return actor, _invoice(session, patient.id)


def _provider(session: Session, tmp_path: Path, log: list[str] | None = None) -> SandboxProvider:
    def deliver(body: bytes, signature: str) -> None:
        result = handle_callback(session, provider_name="sandbox", body=body, signature=signature)
        if log is not None:
            log.append(result.outcome)

    return SandboxProvider(tmp_path / "ledger.sqlite3", deliver)


def _events(session: Session) -> int:
    return session.scalar(select(func.count(PaymentEvent.id))) or 0


def test_a_paid_checkout_settles_the_invoice_once_despite_a_duplicate_callback(
    session: Session, portal: tuple[Actor, Invoice], tmp_path: Path
) -> None:
    actor, invoice = portal
    outcomes: list[str] = []
    provider = _provider(session, tmp_path, outcomes)
    checkout = start_online_payment(
        session=session, actor=actor, invoice_id=invoice.id, method="wechat", provider=provider
    )
    assert checkout.amount == Decimal("120.00")
    again = start_online_payment(
        session=session, actor=actor, invoice_id=invoice.id, method="wechat", provider=provider
    )
    assert again.payment_id == checkout.payment_id  # a second click reuses the checkout
    provider.pay(checkout.provider_reference, "success", duplicate=True)
    assert outcomes == ["settled", "duplicate"]
    session.refresh(invoice)
    assert invoice.paid_amount == Decimal("120.00") and invoice.status == "paid"
    payment = session.get(Payment, checkout.payment_id)
    assert payment is not None and payment.status == "succeeded"


def test_a_declined_checkout_fails_and_the_bill_stays_open(
    session: Session, portal: tuple[Actor, Invoice], tmp_path: Path
) -> None:
    actor, invoice = portal
    provider = _provider(session, tmp_path)
    checkout = start_online_payment(
        session=session, actor=actor, invoice_id=invoice.id, method="alipay", provider=provider
    )
    provider.pay(checkout.provider_reference, "decline")
    session.refresh(invoice)
    assert invoice.paid_amount == 0 and invoice.status == "issued"
    assert session.get(Payment, checkout.payment_id).status == "failed"  # type: ignore[union-attr]


def test_a_forged_callback_is_refused_and_changes_nothing(
    session: Session, portal: tuple[Actor, Invoice], tmp_path: Path
) -> None:
    actor, invoice = portal
    provider = _provider(session, tmp_path)
    checkout = start_online_payment(
        session=session, actor=actor, invoice_id=invoice.id, method="wechat", provider=provider
    )
    body = json.dumps(
        {
            "event_id": "EVT-FAKE",
            "provider_reference": checkout.provider_reference,
            "merchant_reference": f"CIMS-PAY-{checkout.payment_id}-0123456789",
            "status": "succeeded",
            "amount": "120.00",
        }
    ).encode()
    forged = handle_callback(
        session, provider_name="sandbox", body=body, signature=sign(body, b"x" * 32)
    )
    assert (forged.outcome, forged.http_status) == ("forged", 401)
    session.refresh(invoice)
    assert invoice.paid_amount == 0
    assert session.get(Payment, checkout.payment_id).status == "pending"  # type: ignore[union-attr]
    kept = session.scalar(select(PaymentEvent).where(PaymentEvent.signature_valid.is_(False)))
    assert kept is not None and kept.payment_id is None


def test_a_missed_callback_is_settled_by_reconciliation_and_a_late_one_changes_nothing(
    session: Session, portal: tuple[Actor, Invoice], tmp_path: Path
) -> None:
    actor, invoice = portal

    def unreachable(body: bytes, signature: str) -> None:
        raise OSError("connection refused")

    provider = SandboxProvider(tmp_path / "ledger.sqlite3", unreachable)
    checkout = start_online_payment(
        session=session, actor=actor, invoice_id=invoice.id, method="wechat", provider=provider
    )
    provider.pay(checkout.provider_reference, "success")
    session.refresh(invoice)
    assert invoice.paid_amount == 0  # the callback never arrived
    report = reconcile(session, provider, now=utcnow() + dt.timedelta(minutes=5))
    assert report.settled_from_query == 1 and report.provider_paid_we_did_not == []
    session.refresh(invoice)
    assert invoice.paid_amount == Decimal("120.00")
    # The callback arrives late after all: recorded, applied to nothing.
    status = provider.query(checkout.provider_reference)
    assert status is not None
    body = json.dumps(
        {
            "event_id": "EVT-LATE",
            "provider_reference": checkout.provider_reference,
            "merchant_reference": status.merchant_reference,
            "status": "succeeded",
            "amount": "120.00",
        }
    ).encode()
    late = handle_callback(session, provider_name="sandbox", body=body, signature=sign(body))
    assert late.outcome == "settled" and late.payment_status == "succeeded"
    session.refresh(invoice)
    assert invoice.paid_amount == Decimal("120.00")


def test_an_abandoned_checkout_expires_and_reconciliation_fails_it(
    session: Session, portal: tuple[Actor, Invoice], tmp_path: Path
) -> None:
    actor, invoice = portal
    provider = _provider(session, tmp_path)
    checkout = start_online_payment(
        session=session, actor=actor, invoice_id=invoice.id, method="wechat", provider=provider
    )
    early = reconcile(session, provider, now=utcnow() + dt.timedelta(minutes=5))
    assert early.still_pending == 1
    later = reconcile(session, provider, now=utcnow() + dt.timedelta(minutes=30))
    assert later.failed_from_query == 1
    assert session.get(Payment, checkout.payment_id).status == "failed"  # type: ignore[union-attr]


def test_money_the_provider_took_for_a_bill_paid_meanwhile_is_flagged_for_refund(
    session: Session, portal: tuple[Actor, Invoice], tmp_path: Path
) -> None:
    from cims.billing.payments import take_payment

    actor, invoice = portal
    provider = _provider(session, tmp_path)
    checkout = start_online_payment(
        session=session, actor=actor, invoice_id=invoice.id, method="wechat", provider=provider
    )
    take_payment(
        session=session,
        actor=factories.actor(session, "finance"),
        invoice_id=invoice.id,
        amount=Decimal("120.00"),
        method="cash",
        idempotency_key="desk-1",
    )
    provider.pay(checkout.provider_reference, "success")
    session.refresh(invoice)
    assert invoice.paid_amount == Decimal("120.00")  # never more than the bill
    assert session.get(Payment, checkout.payment_id).status == "failed"  # type: ignore[union-attr]
    report = reconcile(session, provider)
    assert report.provider_paid_we_did_not == [checkout.payment_id]


def test_only_the_patient_can_pay_their_own_bill_online(
    session: Session, portal: tuple[Actor, Invoice], tmp_path: Path
) -> None:
    _, invoice = portal
    provider = _provider(session, tmp_path)
    stranger = factories.actor(session, "patient", patient_id=factories.patient(session).id)
    with pytest.raises(BillingRefused):
        start_online_payment(
            session=session,
            actor=stranger,
            invoice_id=invoice.id,
            method="wechat",
            provider=provider,
        )
    call: Callable[..., object] = start_online_payment
    with pytest.raises(AccessDenied):
        call(
            session=session,
            actor=factories.actor(session, "finance"),
            invoice_id=invoice.id,
            method="wechat",
            provider=provider,
        )
    assert _events(session) == 0
