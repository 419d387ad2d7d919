"""A payment provider's callback arriving twice or late.

Already proved elsewhere (not repeated here):

- tests/test_online_payment.py
  ``test_a_paid_checkout_settles_the_invoice_once_despite_a_duplicate_callback`` (twice, in a
  row), ``test_a_missed_callback_is_settled_by_reconciliation_and_a_late_one_changes_nothing``
  (late: after the reconcile job settled it), ``test_an_abandoned_checkout_expires_and_
  reconciliation_fails_it``, ``test_money_the_provider_took_for_a_bill_paid_meanwhile_is_
  flagged_for_refund``, ``test_a_forged_callback_is_refused_and_changes_nothing``;
- tests/billing/test_billing_payments.py
  ``test_provider_payment_is_pending_until_settled_exactly_once`` and
  ``test_a_late_provider_success_that_would_overpay_is_marked_failed``.

Added here: a success callback arriving after the pending payment expired (reconciliation
had already failed it), a late decline after a success, and the same callback delivered
by two app processes at the same moment (plus a resend under a new event id).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from decimal import Decimal
from pathlib import Path

from fault_helpers import connect, poll
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

import factories
from cims.base import utcnow
from cims.billing.models import Invoice, Payment, PaymentEvent
from cims.billing.online import (
    CallbackResult,
    OnlineCheckout,
    handle_callback,
    reconcile,
    start_online_payment,
)
from cims.billing.sandbox import SandboxProvider, sign
from cims.security.models import AuditEvent
from cims.security.rbac import Actor

_WAITING = (
    "SELECT count(DISTINCT l.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE NOT l.granted AND a.application_name = 'faults_callbacks'"
)


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _portal_invoice(session: Session, amount: str = "120.00") -> tuple[Actor, int]:
    """A patient's portal actor and one issued self-pay invoice of theirs."""
    patient = factories.patient(session, insurance_type="self_pay")
    actor = factories.actor(session, "patient", patient_id=patient.id)
    return actor, factories.issued_invoice(session, amount=amount, patient_id=patient.id)


class Mailbox:
    """A provider's callbacks, kept to deliver when and as often as the test chooses."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, str]] = []

    def __call__(self, body: bytes, signature: str) -> None:
        self.sent.append((body, signature))


def _checkout(
    session: Session, tmp_path: Path, amount: str = "120.00", method: str = "wechat"
) -> tuple[Actor, int, Mailbox, SandboxProvider, OnlineCheckout]:
    """A portal patient's open invoice and an online checkout started for it: (patient
    actor, invoice id, the provider's mailbox of callbacks, the provider, the checkout)."""
    actor, invoice_id = _portal_invoice(session, amount)
    mailbox = Mailbox()
    provider = SandboxProvider(tmp_path / "ledger.sqlite3", mailbox)
    checkout = start_online_payment(
        session=session, actor=actor, invoice_id=invoice_id, method=method, provider=provider
    )
    return actor, invoice_id, mailbox, provider, checkout


def _deliver(session: Session, body: bytes, signature: str) -> CallbackResult:
    return handle_callback(session, provider_name="sandbox", body=body, signature=signature)


def test_a_success_callback_after_the_payment_expired_moves_no_money_and_is_flagged(
    session: Session, tmp_path: Path
) -> None:
    actor, invoice_id, mailbox, provider, checkout = _checkout(session, tmp_path)
    # Nothing heard for 30 minutes: the provider says expired, reconciliation fails it.
    expired = reconcile(session, provider, now=utcnow() + dt.timedelta(minutes=30))
    assert expired.failed_from_query == 1
    # Then the payer's money arrives after all, and its callback with it.
    provider.pay(checkout.provider_reference, "success")
    [(body, signature)] = mailbox.sent
    late = _deliver(session, body, signature)
    assert (late.outcome, late.payment_status) == ("settled", "failed")  # not revived
    invoice = session.get(Invoice, invoice_id)
    assert invoice is not None and invoice.paid_amount == 0 and invoice.status == "issued"
    # The money the provider holds is not lost from sight: reconciliation asks for a refund.
    assert reconcile(session, provider).provider_paid_we_did_not == [checkout.payment_id]

    # The patient pays again: a new checkout, and the bill is paid exactly once.
    again = start_online_payment(
        session=session, actor=actor, invoice_id=invoice_id, method="wechat", provider=provider
    )
    assert again.payment_id != checkout.payment_id
    provider.pay(again.provider_reference, "success", duplicate=True)
    outcomes = [_deliver(session, b, s).outcome for b, s in mailbox.sent[1:]]
    assert outcomes == ["settled", "duplicate"]
    session.refresh(invoice)
    assert invoice.paid_amount == Decimal("120.00") and invoice.status == "paid"


def test_a_late_decline_after_a_success_changes_nothing(session: Session, tmp_path: Path) -> None:
    _, invoice_id, mailbox, provider, checkout = _checkout(session, tmp_path, "80.00", "alipay")
    provider.pay(checkout.provider_reference, "success")
    [(body, signature)] = mailbox.sent
    assert _deliver(session, body, signature).payment_status == "succeeded"
    decline = json.dumps({**json.loads(body), "event_id": "EVT-LATE-DECLINE", "status": "declined"})
    late = _deliver(session, decline.encode(), sign(decline.encode()))
    assert (late.outcome, late.payment_status) == ("settled", "succeeded")
    invoice = session.get(Invoice, invoice_id)
    assert invoice is not None and invoice.paid_amount == Decimal("80.00")


def test_the_same_callback_at_the_same_moment_in_two_processes_settles_once(
    faults_database: tuple[str, Engine], tmp_path: Path
) -> None:
    """Each delivery in its own thread, connection and transaction, as two app servers would."""
    _, engine = faults_database
    with Session(engine) as session, session.begin():
        _, invoice_id, mailbox, provider, checkout = _checkout(session, tmp_path, "66.00")
    provider.pay(checkout.provider_reference, "success", duplicate=True)
    (body, signature), repeated = mailbox.sent
    assert repeated == (body, signature)
    resent = json.dumps({**json.loads(body), "event_id": "EVT-RESENT"}).encode()
    deliveries = [(body, signature)] * 2 + [(resent, sign(resent))]
    results: list[str] = []
    app = create_engine(_url(engine), connect_args={"application_name": "faults_callbacks"})

    def deliver(body: bytes, signature: str) -> None:
        with Session(app) as session, session.begin():
            results.append(_deliver(session, body, signature).outcome)

    # Hold the invoice so all three deliveries are inside their transactions, each event
    # row written, before any of them may settle: the worst interleaving, every time.
    with connect(_url(engine)) as holder, connect(_url(engine), autocommit=True) as watch:
        holder.execute("SELECT 1 FROM invoices WHERE id = %s FOR UPDATE", (invoice_id,))
        threads = [threading.Thread(target=deliver, args=d) for d in deliveries]
        for thread in threads:
            thread.start()
        poll(lambda: watch.execute(_WAITING).fetchone() == (len(deliveries),), "3 waiting")
        holder.rollback()
        for thread in threads:
            thread.join(60)
    app.dispose()
    assert sorted(results) == ["duplicate", "settled", "settled"]
    with Session(engine) as session:
        payment = session.get(Payment, checkout.payment_id)
        invoice = session.get(Invoice, invoice_id)
        assert payment is not None and payment.status == "succeeded"
        assert invoice is not None and invoice.paid_amount == Decimal("66.00")
        events = select(func.count()).where(PaymentEvent.payment_id == checkout.payment_id)
        assert session.scalar(events) == 2  # the original event once, the resend once
        settled = select(func.count()).where(
            AuditEvent.action == "billing.settle_provider_payment",
            AuditEvent.object_id == str(checkout.payment_id),
        )
        assert session.scalar(settled) == 1


def test_a_refund_approved_while_a_late_callback_for_the_same_payment_waits_does_not_deadlock(
    faults_database: tuple[str, Engine], tmp_path: Path
) -> None:
    """The approver holds the invoice and reaches for the payment just as a resent callback
    for that payment has written its event row (a key-share lock on the payment) and waits
    for the invoice. Locking the payment FOR UPDATE would wait for the callback, which waits
    for the approver: a deadlock that PostgreSQL breaks by failing one of them."""
    from cims.billing.invoices import lock_invoice
    from cims.billing.refunds import _locked_payment

    _, engine = faults_database
    with Session(engine) as session, session.begin():
        _, invoice_id, mailbox, provider, checkout = _checkout(session, tmp_path, "48.00")
    provider.pay(checkout.provider_reference, "success")
    [(body, signature)] = mailbox.sent
    with Session(engine) as session, session.begin():
        assert _deliver(session, body, signature).outcome == "settled"
    resent = json.dumps({**json.loads(body), "event_id": "EVT-LATE"}).encode()
    app = create_engine(_url(engine), connect_args={"application_name": "faults_callbacks"})
    outcome: list[str] = []

    def deliver() -> None:
        with Session(app) as session, session.begin():
            outcome.append(_deliver(session, resent, sign(resent)).outcome)

    with Session(engine) as approver, connect(_url(engine), autocommit=True) as watch:
        with approver.begin():
            lock_invoice(approver, invoice_id)  # approve_refund's order: invoice, then payment
            late = threading.Thread(target=deliver)
            late.start()
            poll(lambda: watch.execute(_WAITING).fetchone() == (1,), "the callback waits")
            payment = _locked_payment(approver, checkout.payment_id)  # must not deadlock
            assert payment.status == "succeeded"
        late.join(60)
    app.dispose()
    assert outcome == ["settled"]  # a new event id for a settled payment: recorded, no money
    with Session(engine) as session:
        invoice = session.get(Invoice, invoice_id)
        assert invoice is not None and invoice.paid_amount == Decimal("48.00")
