"""Invoices and payments: idempotent, never overpaid, correct under concurrency."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

import factories
from cims.base import utcnow
from cims.billing import invoices, payments
from cims.billing.catalogue import BillingRefused
from cims.billing.models import Charge, Invoice, Payment
from cims.security.bootstrap import ensure_roles_and_privileges
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied, Actor

D = Decimal


def _pay(
    session: Session, actor: Actor, invoice_id: int, amount: str, key: str, **kw: str
) -> Payment:
    return payments.take_payment(
        session=session, actor=actor, invoice_id=invoice_id, amount=D(amount),
        method=kw.get("method", "cash"), idempotency_key=key,
    )  # fmt: skip


def test_an_invoice_copies_the_charges_and_is_issued_due_in_30_days(session: Session) -> None:
    finance = factories.actor(session, "finance")
    invoice_id = factories.issued_invoice(session, amount="120.00")
    view = invoices.get_invoice(session=session, actor=finance, invoice_id=invoice_id)
    assert view.status == "issued" and view.balance == D("120.00")
    assert view.due_date is not None and view.issued_at is not None
    assert (view.due_date - view.issued_at.date()).days == 30
    assert [line.amount for line in view.lines] == [D("120.00")]
    assert view.invoice_no.startswith("INV") and view.invoice_no.endswith(f"{invoice_id:08d}")
    with pytest.raises(BillingRefused, match=r"billing\.invoice_not_draft"):
        invoices.issue_invoice(session=session, actor=finance, invoice_id=invoice_id)
    with pytest.raises(BillingRefused, match=r"billing\.nothing_to_invoice"):
        invoices.create_invoice(session=session, actor=finance, patient_id=view.patient_id)
    opened = invoices.list_open_invoices(session=session, actor=finance, patient_id=view.patient_id)
    assert [i.invoice_id for i in opened] == [invoice_id]


def test_partial_payments_then_paid_and_overpayment_refused(session: Session) -> None:
    cashier = factories.actor(session, "finance")
    invoice_id = factories.issued_invoice(session, amount="100.00")
    _pay(session, cashier, invoice_id, "30.00", "k-1")
    invoice = session.get(Invoice, invoice_id)
    assert invoice is not None and invoice.status == "partly_paid"
    with pytest.raises(BillingRefused) as refused:
        _pay(session, cashier, invoice_id, "70.01", "k-2")
    assert refused.value.key == "billing.overpayment" and refused.value.params == {
        "balance": "70.00"
    }
    _pay(session, cashier, invoice_id, "70.00", "k-3", method="wechat")
    session.refresh(invoice)
    assert invoice.status == "paid" and invoice.paid_amount == D("100.00")
    with pytest.raises(BillingRefused, match=r"billing\.invoice_paid"):
        _pay(session, cashier, invoice_id, "1.00", "k-4")
    count = session.scalar(select(func.count()).where(Payment.invoice_id == invoice_id))
    assert count == 2


def test_bad_payment_input_is_refused_and_writes_nothing(session: Session) -> None:
    cashier = factories.actor(session, "finance")
    invoice_id = factories.issued_invoice(session, amount="100.00")
    for amount, method, key, problem in (
        ("0", "cash", "a", "billing.amount_invalid"),
        ("-5", "cash", "b", "billing.amount_invalid"),
        ("1.005", "cash", "c", "billing.amount_invalid"),
        ("5", "bitcoin", "d", "billing.method_invalid"),
        ("5", "cash", "", "billing.key_invalid"),
    ):
        with pytest.raises(BillingRefused, match=problem):
            _pay(session, cashier, invoice_id, amount, key, method=method)
    with pytest.raises(BillingRefused, match=r"billing\.amount_invalid"):
        payments.take_payment(
            session=session, actor=cashier, invoice_id=invoice_id, amount=5.0,  # type: ignore[arg-type]
            method="cash", idempotency_key="float",
        )  # fmt: skip
    assert session.scalar(select(func.count()).where(Payment.invoice_id == invoice_id)) == 0
    with pytest.raises(AccessDenied):
        _pay(session, factories.actor(session, "registrar"), invoice_id, "5", "e")


def test_a_retry_returns_the_same_payment_and_a_reused_key_is_refused(session: Session) -> None:
    cashier = factories.actor(session, "finance")
    invoice_id = factories.issued_invoice(session, amount="100.00")
    other_id = factories.issued_invoice(session, amount="50.00")
    first = _pay(session, cashier, invoice_id, "40.00", "same-key")
    again = _pay(session, cashier, invoice_id, "40.00", "same-key")
    assert again.id == first.id
    with pytest.raises(BillingRefused, match=r"billing\.key_reused"):
        _pay(session, cashier, invoice_id, "41.00", "same-key")
    with pytest.raises(BillingRefused, match=r"billing\.key_reused"):
        _pay(session, cashier, other_id, "40.00", "same-key")
    invoice = session.get(Invoice, invoice_id)
    assert invoice is not None and invoice.paid_amount == D("40.00")
    audited = session.scalars(
        select(AuditEvent.action).where(
            AuditEvent.actor_id == cashier.user_id, AuditEvent.action == "billing.take_payment"
        )
    ).all()
    assert len(audited) == 1


def test_draft_and_void_invoices_cannot_be_paid_and_void_needs_no_payments(
    session: Session,
) -> None:
    cashier = factories.actor(session, "finance")
    factories.price_item(session, "VOID-1", unit_price="10.00")
    patient = factories.patient(session, insurance_type="self_pay")
    from cims.billing.charges import post_charge

    charge = post_charge(
        session=session, actor=cashier, patient_id=patient.id, encounter_id=None,
        price_code="VOID-1", quantity=D("1"), source_type="order", source_id=4242,
        service_date=dt.date.today(),
    )  # fmt: skip
    draft = invoices.create_invoice(session=session, actor=cashier, patient_id=patient.id)
    with pytest.raises(BillingRefused, match=r"billing\.invoice_not_payable"):
        _pay(session, cashier, draft.invoice_id, "5.00", "draft-1")
    with pytest.raises(BillingRefused, match=r"billing\.reason_required"):
        invoices.void_invoice(
            session=session, actor=cashier, invoice_id=draft.invoice_id, reason=""
        )
    voided = invoices.void_invoice(
        session=session, actor=cashier, invoice_id=draft.invoice_id, reason="wrong patient"
    )
    assert voided.status == "void"
    with pytest.raises(BillingRefused, match=r"billing\.invoice_not_payable"):
        _pay(session, cashier, draft.invoice_id, "5.00", "void-1")
    # The charge is released: a live copy (same price) waits for the next invoice.
    live = session.scalars(
        select(Charge).where(Charge.patient_id == patient.id, Charge.voided.is_(False))
    ).all()
    assert [(c.invoice_id, c.amount, c.source_id) for c in live] == [(None, D("10.00"), 4242)]
    assert session.get(Charge, charge.id).voided  # type: ignore[union-attr]
    again = invoices.create_invoice(session=session, actor=cashier, patient_id=patient.id)
    assert again.total_amount == D("10.00")
    invoices.issue_invoice(session=session, actor=cashier, invoice_id=again.invoice_id)
    _pay(session, cashier, again.invoice_id, "1.00", "paid-1")
    with pytest.raises(BillingRefused, match=r"billing\.invoice_has_payments"):
        invoices.void_invoice(
            session=session, actor=cashier, invoice_id=again.invoice_id, reason="x"
        )


def test_ar_aging_buckets_outstanding_patient_share(session: Session) -> None:
    finance = factories.actor(session, "finance")
    before = invoices.ar_aging(session=session, actor=finance, today=dt.date.today())
    ids = [factories.issued_invoice(session, amount=a) for a in ("10.00", "20.00", "30.00")]
    ages = (5, 45, 200)
    for invoice_id, age in zip(ids, ages, strict=True):
        invoice = session.get(Invoice, invoice_id)
        assert invoice is not None
        invoice.issued_at = utcnow() - dt.timedelta(days=age)
    _pay(session, finance, ids[1], "5.00", "aging-1")
    report = invoices.ar_aging(session=session, actor=finance, today=dt.date.today())
    grew = {k: report.buckets[k] - before.buckets[k] for k in report.buckets}
    assert grew == {"0_30": D("10.00"), "31_60": D("15.00"), "61_90": D("0"), "90_plus": D("30.00")}
    assert report.total - before.total == D("55.00")


def test_provider_payment_is_pending_until_settled_exactly_once(session: Session) -> None:
    cashier = factories.actor(session, "finance")
    invoice_id = factories.issued_invoice(session, amount="60.00")
    pending = payments.start_provider_payment(
        session=session, actor=cashier, invoice_id=invoice_id, amount=D("60.00"),
        method="wechat", idempotency_key="wx-1", provider="sandbox",
    )  # fmt: skip
    invoice = session.get(Invoice, invoice_id)
    assert invoice is not None
    assert pending.status == "pending" and invoice.paid_amount == 0
    done = payments.settle_provider_payment(
        session=session, payment_id=pending.id, succeeded=True, provider_reference="SBX-1"
    )
    assert done.status == "succeeded" and done.provider_reference == "SBX-1"
    session.refresh(invoice)
    assert invoice.paid_amount == D("60.00") and invoice.status == "paid"
    twice = payments.settle_provider_payment(
        session=session, payment_id=pending.id, succeeded=True, provider_reference="SBX-1"
    )
    session.refresh(invoice)
    assert twice.status == "succeeded" and invoice.paid_amount == D("60.00")


def test_a_late_provider_success_that_would_overpay_is_marked_failed(session: Session) -> None:
    cashier = factories.actor(session, "finance")
    invoice_id = factories.issued_invoice(session, amount="60.00")
    pending = payments.start_provider_payment(
        session=session, actor=cashier, invoice_id=invoice_id, amount=D("60.00"),
        method="alipay", idempotency_key="ali-1", provider="sandbox",
    )  # fmt: skip
    _pay(session, cashier, invoice_id, "60.00", "cash-meanwhile")
    late = payments.settle_provider_payment(
        session=session, payment_id=pending.id, succeeded=True, provider_reference="SBX-2"
    )
    invoice = session.get(Invoice, invoice_id)
    assert late.status == "failed" and invoice is not None and invoice.paid_amount == D("60.00")
    declined = payments.start_provider_payment(
        session=session, actor=cashier, invoice_id=factories.issued_invoice(session),
        amount=D("1.00"), method="card", idempotency_key="pos-1", provider="sandbox",
    )  # fmt: skip
    assert (
        payments.settle_provider_payment(
            session=session, payment_id=declined.id, succeeded=False, provider_reference=None
        ).status
        == "failed"
    )


def test_a_patient_starts_paying_only_their_own_invoice(session: Session) -> None:
    mine = factories.patient(session, insurance_type="self_pay")
    me = factories.actor(session, "patient", patient_id=mine.id)
    my_invoice = factories.issued_invoice(session, amount="20.00", patient_id=mine.id)
    someone_else = factories.issued_invoice(session, amount="20.00")
    started = payments.start_my_provider_payment(
        session=session, actor=me, invoice_id=my_invoice, amount=D("20.00"), method="wechat",
        idempotency_key="portal-1", provider="sandbox",
    )  # fmt: skip
    assert started.status == "pending" and started.cashier_id is None
    with pytest.raises(BillingRefused, match=r"billing\.invoice_not_found"):
        payments.start_my_provider_payment(
            session=session, actor=me, invoice_id=someone_else, amount=D("20.00"),
            method="wechat", idempotency_key="portal-2", provider="sandbox",
        )  # fmt: skip


@pytest.fixture
def billing_engine(fresh_database: Callable[[str], str]) -> Iterator[Engine]:
    """Committed data on a database of its own: each cashier has its own connection."""
    engine = create_engine(fresh_database("billing_race"), pool_size=25)
    with Session(engine) as db, db.begin():
        ensure_roles_and_privileges(db)
    yield engine
    engine.dispose()


def test_twenty_concurrent_payments_with_repeated_keys_never_overpay_or_double(
    billing_engine: Engine,
) -> None:
    with Session(billing_engine, expire_on_commit=False) as db, db.begin():
        invoice_id = factories.issued_invoice(db, amount="100.00")
        cashiers = [factories.actor(db, "finance") for _ in range(5)]
    # 20 requests of 10.00: 12 distinct keys, 8 of them sent twice (retries, double clicks).
    keys = [f"race-{n % 12}" for n in range(20)]
    start = threading.Barrier(20)
    outcomes: list[tuple[str, str]] = []

    def pay(n: int) -> None:
        with Session(billing_engine) as db:
            start.wait()
            try:
                with db.begin():
                    payment = payments.take_payment(
                        session=db, actor=cashiers[n % 5], invoice_id=invoice_id,
                        amount=D("10.00"), method="cash", idempotency_key=keys[n],
                    )  # fmt: skip
                    outcomes.append((keys[n], f"paid:{payment.id}"))
            except BillingRefused as refusal:
                outcomes.append((keys[n], refusal.key))

    threads = [threading.Thread(target=pay, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 20
    with Session(billing_engine) as db:
        invoice = db.get(Invoice, invoice_id)
        rows = db.scalars(select(Payment).where(Payment.invoice_id == invoice_id)).all()
    assert invoice is not None
    assert invoice.paid_amount == D("100.00") and invoice.status == "paid"
    assert len(rows) == 10 and len({p.idempotency_key for p in rows}) == 10
    assert sum((p.amount for p in rows), D("0")) == D("100.00")
    # Each key got one answer: both requests of a paid key saw the same payment.
    by_key: dict[str, set[str]] = {}
    for key, outcome in outcomes:
        by_key.setdefault(key, set()).add(outcome)
    paid_keys = {p.idempotency_key for p in rows}
    for key, answers in by_key.items():
        if key in paid_keys:
            assert len(answers) == 1 and next(iter(answers)).startswith("paid:"), (key, answers)
        else:
            assert answers <= {"billing.overpayment", "billing.invoice_paid"}, (key, answers)


def test_no_payment_slips_into_a_day_while_it_is_being_closed(billing_engine: Engine) -> None:
    from cims.billing.models import DailySettlement
    from cims.billing.settlement import close_day
    from cims.clock import local_today

    with Session(billing_engine, expire_on_commit=False) as db, db.begin():
        invoice_ids = [factories.issued_invoice(db, amount="10.00") for _ in range(12)]
        cashier = factories.actor(db, "finance")
    start = threading.Barrier(13)
    outcomes: list[str] = []

    def pay(invoice_id: int) -> None:
        with Session(billing_engine) as db:
            start.wait()
            try:
                with db.begin():
                    payments.take_payment(
                        session=db, actor=cashier, invoice_id=invoice_id, amount=D("10.00"),
                        method="cash", idempotency_key=f"close-race-{invoice_id}",
                    )  # fmt: skip
                outcomes.append("paid")
            except BillingRefused as refusal:
                outcomes.append(refusal.key)

    def close() -> None:
        with Session(billing_engine) as db:
            start.wait()
            with db.begin():
                close_day(session=db, actor=cashier, day=local_today(), counted={})

    threads = [threading.Thread(target=pay, args=(i,)) for i in invoice_ids]
    threads.append(threading.Thread(target=close))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(outcomes) <= {"paid", "billing.day_closed"} and len(outcomes) == 12
    with Session(billing_engine) as db:
        row = db.scalar(
            select(DailySettlement).where(DailySettlement.cashier_id == cashier.user_id)
        )
        taken = db.scalars(select(Payment).where(Payment.cashier_id == cashier.user_id)).all()
    assert row is not None and row.status == "closed" and row.totals is not None
    # Everything taken made it into the closed day: nothing was taken after the close.
    assert len(taken) == outcomes.count("paid") == row.totals["payment_count"]
    assert all(p.settlement_id == row.id for p in taken)
    assert D(row.totals["expected"]["cash"]) == D("10.00") * len(taken)
