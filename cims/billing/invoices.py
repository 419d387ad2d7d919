"""Invoices built from a patient's uninvoiced charges: draft → issued → partly paid → paid, or void.

Each charge is copied into an invoice line, so later catalogue changes never alter a bill.
Building locks the charges it takes (``FOR UPDATE``): two cashiers invoicing the same
patient at once cannot put one charge on two invoices.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.billing.catalogue import BillingRefused
from cims.billing.charges import repost
from cims.billing.models import Charge, Invoice, InvoiceLine, Payment
from cims.clock import local_today, to_local
from cims.patients.models import Patient
from cims.security import audit
from cims.security.rbac import Actor, Privilege, requires

OPEN: Final = ("draft", "issued", "partly_paid")
PAYABLE: Final = ("issued", "partly_paid")
DUE_DAYS: Final = 30
AGING_BUCKETS: Final = ("0_30", "31_60", "61_90", "90_plus")
ZERO: Final = Decimal("0.00")


@dataclass(frozen=True)
class InvoiceLineView:
    """One line as printed."""

    charge_id: int
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    insurance_amount: Decimal
    patient_amount: Decimal


@dataclass(frozen=True)
class PaymentView:
    """A payment against an invoice."""

    payment_id: int
    method: str
    amount: Decimal
    refunded_amount: Decimal
    status: str
    received_at: dt.datetime | None  # hospital-local


@dataclass(frozen=True)
class InvoiceView:
    """An invoice with its lines and payments; ``balance`` is what the patient still owes."""

    invoice_id: int
    invoice_no: str
    patient_id: int
    encounter_id: int | None
    status: str
    issued_at: dt.datetime | None  # hospital-local
    due_date: dt.date | None
    total_amount: Decimal
    insurance_amount: Decimal
    patient_amount: Decimal
    paid_amount: Decimal
    balance: Decimal
    lines: tuple[InvoiceLineView, ...] = ()
    payments: tuple[PaymentView, ...] = ()


@dataclass(frozen=True)
class ChargeView:
    """An uninvoiced charge waiting for the next invoice."""

    charge_id: int
    encounter_id: int | None
    service_date: dt.date
    description: str
    quantity: Decimal
    amount: Decimal
    insurance_amount: Decimal
    patient_amount: Decimal


@dataclass(frozen=True)
class AgingReport:
    """Outstanding patient share by age of the invoice (days since issue)."""

    today: dt.date
    buckets: dict[str, Decimal]
    counts: dict[str, int]
    total: Decimal


def view_of(invoice: Invoice, *, full: bool = False, session: Session | None = None) -> InvoiceView:
    """The screen/print view of an invoice (with lines and payments when ``full``)."""
    lines: tuple[InvoiceLineView, ...] = ()
    payments: tuple[PaymentView, ...] = ()
    if full and session is not None:
        lines = tuple(
            InvoiceLineView(
                line.charge_id,
                line.description,
                line.quantity,
                line.unit_price,
                line.amount,
                line.insurance_amount,
                line.patient_amount,
            )
            for line in session.scalars(
                select(InvoiceLine)
                .where(InvoiceLine.invoice_id == invoice.id)
                .order_by(InvoiceLine.id)
            )
        )
        payments = tuple(
            PaymentView(
                p.id, p.method, p.amount, p.refunded_amount, p.status, to_local(p.received_at)
            )
            for p in session.scalars(
                select(Payment).where(Payment.invoice_id == invoice.id).order_by(Payment.id)
            )
        )
    return InvoiceView(
        invoice_id=invoice.id,
        invoice_no=invoice.invoice_no,
        patient_id=invoice.patient_id,
        encounter_id=invoice.encounter_id,
        status=invoice.status,
        issued_at=to_local(invoice.issued_at),
        due_date=invoice.due_date,
        total_amount=invoice.total_amount,
        insurance_amount=invoice.insurance_amount,
        patient_amount=invoice.patient_amount,
        paid_amount=invoice.paid_amount,
        balance=invoice.patient_amount - invoice.paid_amount,
        lines=lines,
        payments=payments,
    )


def lock_invoice(session: Session, invoice_id: int) -> Invoice:
    """The invoice row, locked for the rest of the transaction and freshly read."""
    invoice = session.scalar(
        select(Invoice)
        .where(Invoice.id == invoice_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if invoice is None:
        raise BillingRefused("billing.invoice_not_found")
    return invoice


def status_for(invoice: Invoice) -> str:
    """The payment status an issued invoice has for its paid amount."""
    if invoice.paid_amount >= invoice.patient_amount:
        return "paid"
    return "partly_paid" if invoice.paid_amount > 0 else "issued"


@requires(Privilege.POST_CHARGES)
def create_invoice(
    *, session: Session, actor: Actor, patient_id: int, encounter_id: int | None = None
) -> InvoiceView:
    """A draft invoice of the patient's live uninvoiced charges (of one encounter if given)."""
    patient = session.get(Patient, patient_id)
    if patient is None or patient.voided:
        raise BillingRefused("billing.patient_not_live")
    query = select(Charge).where(
        Charge.patient_id == patient_id,
        Charge.invoice_id.is_(None),
        Charge.voided.is_(False),
    )
    if encounter_id is not None:
        query = query.where(Charge.encounter_id == encounter_id)
    charges = list(
        session.scalars(query.order_by(Charge.service_date, Charge.id).with_for_update())
    )
    if not charges:
        raise BillingRefused("billing.nothing_to_invoice")
    number = int(session.scalar(text("SELECT nextval(pg_get_serial_sequence('invoices', 'id'))")))
    invoice = Invoice(
        id=number,
        invoice_no=f"INV{local_today():%Y%m%d}{number:08d}",
        patient_id=patient_id,
        encounter_id=encounter_id,
        status="draft",
        total_amount=sum((c.amount for c in charges), ZERO),
        insurance_amount=sum((c.insurance_amount for c in charges), ZERO),
        patient_amount=sum((c.patient_amount for c in charges), ZERO),
        paid_amount=ZERO,
        created_by_id=actor.user_id,
    )
    session.add(invoice)
    session.flush()
    for charge in charges:
        charge.invoice_id = invoice.id
        session.add(
            InvoiceLine(
                invoice_id=invoice.id,
                charge_id=charge.id,
                description=charge.description,
                quantity=charge.quantity,
                unit_price=charge.unit_price,
                amount=charge.amount,
                insurance_amount=charge.insurance_amount,
                patient_amount=charge.patient_amount,
            )
        )
    session.flush()
    audit.record(
        session,
        actor,
        "billing.create_invoice",
        patient_id=patient_id,
        object_type="invoice",
        object_id=invoice.id,
        detail={"lines": len(charges), "total": str(invoice.total_amount)},
    )
    return view_of(invoice)


@requires(Privilege.POST_CHARGES)
def issue_invoice(*, session: Session, actor: Actor, invoice_id: int) -> InvoiceView:
    """Issue a draft: it becomes payable, due in 30 days (paid at once if the patient owes 0)."""
    invoice = lock_invoice(session, invoice_id)
    if invoice.status != "draft":
        raise BillingRefused("billing.invoice_not_draft")
    invoice.issued_at = utcnow()
    invoice.due_date = local_today() + dt.timedelta(days=DUE_DAYS)
    invoice.status = status_for(invoice)
    invoice.updated_by_id = actor.user_id
    session.flush()
    audit.record(
        session,
        actor,
        "billing.issue_invoice",
        patient_id=invoice.patient_id,
        object_type="invoice",
        object_id=invoice.id,
    )
    return view_of(invoice)


@requires(Privilege.POST_CHARGES)
def void_invoice(*, session: Session, actor: Actor, invoice_id: int, reason: str) -> InvoiceView:
    """Void an invoice nobody has paid anything on; its charges are released for a new bill."""
    why = (reason or "").strip()
    if not why:
        raise BillingRefused("billing.reason_required")
    invoice = lock_invoice(session, invoice_id)
    if invoice.status == "void":
        raise BillingRefused("billing.invoice_void")
    money_in = session.scalar(
        select(Payment.id)
        .where(Payment.invoice_id == invoice.id, Payment.status != "failed")
        .limit(1)
    )
    if invoice.paid_amount > 0 or money_in is not None:
        raise BillingRefused("billing.invoice_has_payments")
    invoice.status = "void"
    invoice.voided = True
    invoice.voided_at = utcnow()
    invoice.voided_by_id = actor.user_id
    invoice.void_reason = why
    charges = session.scalars(
        select(Charge).where(Charge.invoice_id == invoice.id).with_for_update()
    ).all()
    for charge in charges:
        repost(session, actor, charge, f"invoice {invoice.invoice_no} voided")
    session.flush()
    audit.record(
        session,
        actor,
        "billing.void_invoice",
        patient_id=invoice.patient_id,
        object_type="invoice",
        object_id=invoice.id,
        detail={"released": len(charges)},
    )
    return view_of(invoice)


@requires(Privilege.VIEW_BILLING)
def get_invoice(*, session: Session, actor: Actor, invoice_id: int) -> InvoiceView:
    """An invoice with its lines and payments."""
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise BillingRefused("billing.invoice_not_found")
    audit.record(
        session,
        actor,
        "billing.view_invoice",
        patient_id=invoice.patient_id,
        object_type="invoice",
        object_id=invoice.id,
    )
    return view_of(invoice, full=True, session=session)


@requires(Privilege.VIEW_BILLING)
def list_open_invoices(
    *, session: Session, actor: Actor, patient_id: int | None = None, limit: int = 200
) -> list[InvoiceView]:
    """Draft, issued and partly paid invoices (of one patient if given), oldest first."""
    query = select(Invoice).where(Invoice.status.in_(OPEN), Invoice.voided.is_(False))
    if patient_id is not None:
        query = query.where(Invoice.patient_id == patient_id)
    invoices = session.scalars(query.order_by(Invoice.created_at, Invoice.id).limit(limit)).all()
    audit.record(
        session,
        actor,
        "billing.list_open_invoices",
        patient_id=patient_id,
        object_type="invoice",
        detail={"count": len(invoices)},
    )
    return [view_of(invoice) for invoice in invoices]


@requires(Privilege.VIEW_BILLING)
def list_invoices(
    *, session: Session, actor: Actor, patient_id: int, limit: int = 20
) -> list[InvoiceView]:
    """A patient's invoices of every status (paid ones too, for refunds), open ones first."""
    still_open = Invoice.status.in_(OPEN)
    invoices = session.scalars(
        select(Invoice)
        .where(Invoice.patient_id == patient_id)
        .order_by(still_open.desc(), Invoice.created_at.desc(), Invoice.id.desc())
        .limit(limit)
    ).all()
    audit.record(
        session,
        actor,
        "billing.list_invoices",
        patient_id=patient_id,
        object_type="invoice",
        detail={"count": len(invoices)},
    )
    return [view_of(invoice, full=True, session=session) for invoice in invoices]


@requires(Privilege.VIEW_BILLING)
def list_uninvoiced_charges(*, session: Session, actor: Actor, patient_id: int) -> list[ChargeView]:
    """A patient's live charges that are on no invoice yet."""
    charges = session.scalars(
        select(Charge)
        .where(
            Charge.patient_id == patient_id,
            Charge.invoice_id.is_(None),
            Charge.voided.is_(False),
        )
        .order_by(Charge.service_date, Charge.id)
    ).all()
    audit.record(
        session,
        actor,
        "billing.list_charges",
        patient_id=patient_id,
        object_type="charge",
        detail={"count": len(charges)},
    )
    return [
        ChargeView(
            c.id,
            c.encounter_id,
            c.service_date,
            c.description,
            c.quantity,
            c.amount,
            c.insurance_amount,
            c.patient_amount,
        )
        for c in charges
    ]


def bucket_of(days: int) -> str:
    """The aging bucket of an invoice ``days`` old."""
    if days <= 30:
        return "0_30"
    if days <= 60:
        return "31_60"
    return "61_90" if days <= 90 else "90_plus"


@requires(Privilege.VIEW_BILLING)
def ar_aging(*, session: Session, actor: Actor, today: dt.date) -> AgingReport:
    """Outstanding patient share of issued invoices in 0–30 / 31–60 / 61–90 / 90+ day buckets."""
    buckets = dict.fromkeys(AGING_BUCKETS, ZERO)
    counts = dict.fromkeys(AGING_BUCKETS, 0)
    rows = session.execute(
        select(Invoice.issued_at, Invoice.patient_amount - Invoice.paid_amount).where(
            Invoice.status.in_(PAYABLE), Invoice.voided.is_(False)
        )
    )
    for issued_at, owed in rows:
        issued = (to_local(issued_at) or issued_at).date() if issued_at else today
        bucket = bucket_of(max((today - issued).days, 0))
        buckets[bucket] += owed
        counts[bucket] += 1
    audit.record(
        session, actor, "billing.ar_aging", object_type="ar_aging", object_id=today.isoformat()
    )
    return AgingReport(
        today=today, buckets=buckets, counts=counts, total=sum(buckets.values(), ZERO)
    )
