"""Electronic payment on the merchant side: start a checkout, take callbacks, reconcile.

The flow a patient sees in the portal: CIMS records a *pending* payment (idempotency key),
the provider opens a checkout, the payer pays there, and the provider's signed callback
settles the payment exactly once. Callbacks are verified (HMAC over the raw body), kept
verbatim in ``payment_events`` (one row per provider event id, so a duplicate is noticed
and ignored) and applied through ``settle_provider_payment``, which ignores anything but a
pending payment. Reconciliation asks the provider about every payment still pending and
compares what the provider confirmed with what CIMS booked, in both directions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.billing.catalogue import BillingRefused
from cims.billing.models import Invoice, Payment, PaymentEvent
from cims.billing.payments import settle_provider_payment, start_my_provider_payment
from cims.billing.sandbox import SandboxProvider, sign
from cims.security import audit
from cims.security.rbac import Actor, Privilege, requires

ONLINE_METHODS: Final = ("wechat", "alipay")
MERCHANT_PREFIX: Final = "CIMS-PAY-"
PENDING_GRACE: Final = dt.timedelta(minutes=2)  # give the callback time before we ask


@dataclass(frozen=True)
class OnlineCheckout:
    """A started online payment: ours (payment id) and the provider's (reference)."""

    payment_id: int
    provider_reference: str
    checkout_url: str
    amount: Decimal
    method: str


def merchant_reference(payment: Payment) -> str:
    """The reference CIMS gives the provider for one payment: its id plus a tag of its
    idempotency key, so references never repeat even across databases (a restore, a test)."""
    tag = hashlib.sha256(payment.idempotency_key.encode()).hexdigest()[:10]
    return f"{MERCHANT_PREFIX}{payment.id}-{tag}"


def _payment_id(reference: str) -> int | None:
    number = reference.removeprefix(MERCHANT_PREFIX).split("-")[0]
    return int(number) if reference.startswith(MERCHANT_PREFIX) and number.isdigit() else None


@requires(Privilege.PORTAL_SELF)
def start_online_payment(
    *,
    session: Session,
    actor: Actor,
    invoice_id: int,
    method: str,
    provider: SandboxProvider,
) -> OnlineCheckout:
    """A patient pays the balance of one of their invoices online (WeChat Pay, Alipay).

    While a checkout for this invoice is still pending it is reused, so pressing "pay"
    twice never opens two payments for one bill.
    """
    if method not in ONLINE_METHODS:
        raise BillingRefused("billing.bad_method")
    invoice = session.get(Invoice, invoice_id)
    if invoice is None or invoice.patient_id != actor.patient_id:
        raise BillingRefused("billing.invoice_not_found")
    pending = session.scalar(
        select(Payment).where(
            Payment.invoice_id == invoice_id,
            Payment.status == "pending",
            Payment.provider == provider.name,
            Payment.method == method,
            Payment.received_at > utcnow() - dt.timedelta(minutes=10),
        )
    )
    if pending is not None and pending.provider_reference:
        return OnlineCheckout(
            pending.id,
            pending.provider_reference,
            f"sandbox://pay/{pending.provider_reference}",
            pending.amount,
            method,
        )
    balance = invoice.patient_amount - invoice.paid_amount
    payment = start_my_provider_payment(
        session=session,
        actor=actor,
        invoice_id=invoice_id,
        amount=balance,
        method=method,
        idempotency_key=f"portal-{invoice_id}-{utcnow().timestamp():.6f}",
        provider=provider.name,
    )
    checkout = provider.create_checkout(
        merchant_reference=merchant_reference(payment), amount=payment.amount, method=method
    )
    payment.provider_reference = checkout.provider_reference
    session.flush()
    return OnlineCheckout(
        payment.id, checkout.provider_reference, checkout.checkout_url, payment.amount, method
    )


@requires(Privilege.PORTAL_SELF)
def online_payment_status(*, session: Session, actor: Actor, payment_id: int) -> str:
    """Where one of the patient's own online payments stands: pending, succeeded, failed."""
    payment = session.get(Payment, payment_id)
    if payment is None or payment.patient_id != actor.patient_id:
        raise BillingRefused("billing.payment_not_found")
    audit.record(
        session,
        actor,
        "billing.view_payment",
        patient_id=payment.patient_id,
        object_type="payment",
        object_id=payment.id,
    )
    return payment.status


@dataclass(frozen=True)
class CallbackResult:
    """How a callback was handled, and the HTTP status to answer with."""

    outcome: str  # settled | duplicate | forged | unknown_payment | malformed
    http_status: int
    payment_status: str | None = None


def handle_callback(
    session: Session, *, provider_name: str, body: bytes, signature: str
) -> CallbackResult:
    """Verify, record and apply one provider callback (idempotent; forged ones change nothing)."""
    valid = hmac.compare_digest(sign(body), signature or "")
    try:
        payload: dict[str, Any] = json.loads(body)
        event_id = str(payload["event_id"])
        reference = str(payload["merchant_reference"])
        status = str(payload["status"])
    except (ValueError, KeyError, TypeError):
        return CallbackResult("malformed", 400)
    payment_id = _payment_id(reference)
    stored = session.execute(
        insert(PaymentEvent)
        .values(
            payment_id=payment_id if valid else None,
            provider=provider_name,
            provider_event_id=event_id if valid else f"forged-{utcnow().timestamp()}-{event_id}",
            event_type=status,
            payload=payload,
            signature_valid=valid,
        )
        .on_conflict_do_nothing(index_elements=["provider", "provider_event_id"])
        .returning(PaymentEvent.id)
    ).first()
    if not valid:
        audit.record(
            session,
            None,
            "billing.payment_callback",
            outcome="denied",
            object_type="payment_event",
            detail={"reason": "bad signature"},
            username=f"provider:{provider_name}",
        )
        return CallbackResult("forged", 401)
    if stored is None:
        return CallbackResult("duplicate", 200)
    if payment_id is None or session.get(Payment, payment_id) is None:
        return CallbackResult("unknown_payment", 404)
    payment = settle_provider_payment(
        session=session,
        payment_id=payment_id,
        succeeded=status == "succeeded",
        provider_reference=str(payload.get("provider_reference") or "") or None,
    )
    return CallbackResult("settled", 200, payment.status)


@dataclass
class ReconcileReport:
    """What reconciliation found and fixed."""

    settled_from_query: int = 0  # confirmed by the provider, callback never arrived
    failed_from_query: int = 0  # declined or expired at the provider
    still_pending: int = 0
    provider_paid_we_did_not: list[int] = field(default_factory=list)  # refund needed
    we_paid_provider_did_not: list[int] = field(default_factory=list)  # investigate

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly summary for the job log and the audit row."""
        return {
            "settled_from_query": self.settled_from_query,
            "failed_from_query": self.failed_from_query,
            "still_pending": self.still_pending,
            "provider_paid_we_did_not": self.provider_paid_we_did_not,
            "we_paid_provider_did_not": self.we_paid_provider_did_not,
        }


def reconcile(
    session: Session, provider: SandboxProvider, *, now: dt.datetime | None = None
) -> ReconcileReport:
    """Settle what the callbacks missed and list every disagreement with the provider."""
    now = now or utcnow()
    report = ReconcileReport()
    pending = session.scalars(
        select(Payment).where(
            Payment.provider == provider.name,
            Payment.status == "pending",
            Payment.received_at < now - PENDING_GRACE,
        )
    ).all()
    for payment in pending:
        known = provider.query(payment.provider_reference or "", now=now)
        if known is None or known.status in ("declined", "expired"):
            settle_provider_payment(
                session=session,
                payment_id=payment.id,
                succeeded=False,
                provider_reference=payment.provider_reference,
            )
            report.failed_from_query += 1
        elif known.status == "succeeded":
            settle_provider_payment(
                session=session,
                payment_id=payment.id,
                succeeded=True,
                provider_reference=known.provider_reference,
            )
            report.settled_from_query += 1
        else:
            report.still_pending += 1
    since = now - dt.timedelta(days=1)
    for confirmed in provider.confirmed_since(since):
        payment_id = _payment_id(confirmed.merchant_reference)
        ours = session.get(Payment, payment_id) if payment_id else None
        if ours is None or ours.status not in ("succeeded", "partly_refunded", "refunded"):
            report.provider_paid_we_did_not.append(payment_id or 0)
    ours_paid = session.scalars(
        select(Payment).where(
            Payment.provider == provider.name,
            Payment.status == "succeeded",
            Payment.received_at >= since,
        )
    ).all()
    for payment in ours_paid:
        known = provider.query(payment.provider_reference or "", now=now)
        if known is None or known.status != "succeeded":
            report.we_paid_provider_did_not.append(payment.id)
    audit.record(
        session,
        None,
        "billing.reconcile",
        object_type="provider",
        object_id=provider.name,
        detail=report.summary(),
        username="system",
    )
    return report
