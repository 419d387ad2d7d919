"""Printable invoices and receipts: gather, check the privilege, audit, render."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cims.billing.catalogue import BillingRefused
from cims.billing.models import Invoice, InvoiceLine, Payment
from cims.clock import to_local
from cims.patients.models import Patient
from cims.printables.billing_documents import (
    BillLine,
    InvoiceDocument,
    PaymentLine,
    ReceiptDocument,
    invoice_pdf,
    receipt_pdf,
)
from cims.security import audit
from cims.security.models import User
from cims.security.rbac import Actor, Privilege, requires


def _invoice_document(session: Session, invoice: Invoice) -> InvoiceDocument:
    patient = session.get(Patient, invoice.patient_id)
    assert patient is not None
    lines = session.scalars(
        select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id).order_by(InvoiceLine.id)
    ).all()
    payments = session.scalars(
        select(Payment)
        .where(
            Payment.invoice_id == invoice.id,
            Payment.status.in_(("succeeded", "partly_refunded", "refunded")),
        )
        .order_by(Payment.received_at)
    ).all()
    return InvoiceDocument(
        invoice_no=invoice.invoice_no,
        patient_name=patient.full_name,
        mrn=patient.mrn,
        insurance_type=patient.insurance_type,
        status=invoice.status,
        issued_at=to_local(invoice.issued_at),
        due_date=invoice.due_date,
        lines=tuple(
            BillLine(
                line.description,
                line.quantity,
                line.unit_price,
                line.amount,
                line.insurance_amount,
                line.patient_amount,
            )
            for line in lines
        ),
        total=invoice.total_amount,
        insurance=invoice.insurance_amount,
        patient_share=invoice.patient_amount,
        paid=invoice.paid_amount,
        payments=tuple(
            PaymentLine(
                to_local(p.received_at) or p.received_at, p.method, p.amount, p.refunded_amount
            )
            for p in payments
        ),
    )


def _receipt_document(session: Session, payment: Payment) -> ReceiptDocument:
    invoice = session.get(Invoice, payment.invoice_id)
    patient = session.get(Patient, payment.patient_id)
    assert invoice is not None and patient is not None
    cashier = session.get(User, payment.cashier_id) if payment.cashier_id else None
    return ReceiptDocument(
        receipt_no=f"R{payment.id:08d}",
        invoice_no=invoice.invoice_no,
        patient_name=patient.full_name,
        mrn=patient.mrn,
        received_at=to_local(payment.received_at) or payment.received_at,
        method=payment.method,
        amount=payment.amount,
        cashier=cashier.display_name if cashier else payment.provider or "—",
        balance_after=invoice.patient_amount - invoice.paid_amount,
    )


def _invoice(session: Session, invoice_id: int, patient_id: int | None) -> Invoice:
    invoice = session.get(Invoice, invoice_id)
    if invoice is None or (patient_id is not None and invoice.patient_id != patient_id):
        raise BillingRefused("billing.invoice_not_found")
    return invoice


def _payment(session: Session, payment_id: int, patient_id: int | None) -> Payment:
    payment = session.get(Payment, payment_id)
    counted = ("succeeded", "partly_refunded", "refunded")
    if payment is None or payment.status not in counted:
        raise BillingRefused("billing.payment_not_found")
    if patient_id is not None and payment.patient_id != patient_id:
        raise BillingRefused("billing.payment_not_found")
    return payment


def _audit(
    session: Session, actor: Actor, action: str, patient_id: int, kind: str, oid: int
) -> None:
    audit.record(session, actor, action, patient_id=patient_id, object_type=kind, object_id=oid)


@requires(Privilege.VIEW_BILLING)
def print_invoice(*, session: Session, actor: Actor, invoice_id: int, language: str) -> bytes:
    """The itemised invoice as PDF (finance)."""
    invoice = _invoice(session, invoice_id, None)
    _audit(session, actor, "billing.print_invoice", invoice.patient_id, "invoice", invoice.id)
    return invoice_pdf(_invoice_document(session, invoice), language)


@requires(Privilege.VIEW_BILLING)
def print_receipt(*, session: Session, actor: Actor, payment_id: int, language: str) -> bytes:
    """The receipt of one payment as PDF (finance)."""
    payment = _payment(session, payment_id, None)
    _audit(session, actor, "billing.print_receipt", payment.patient_id, "payment", payment.id)
    return receipt_pdf(_receipt_document(session, payment), language)


@requires(Privilege.PORTAL_SELF)
def print_my_invoice(*, session: Session, actor: Actor, invoice_id: int, language: str) -> bytes:
    """One of the signed-in patient's own invoices as PDF."""
    invoice = _invoice(session, invoice_id, actor.patient_id or -1)
    _audit(session, actor, "billing.print_invoice", invoice.patient_id, "invoice", invoice.id)
    return invoice_pdf(_invoice_document(session, invoice), language)


@requires(Privilege.PORTAL_SELF)
def print_my_receipt(*, session: Session, actor: Actor, payment_id: int, language: str) -> bytes:
    """The receipt of one of the signed-in patient's own payments as PDF."""
    payment = _payment(session, payment_id, actor.patient_id or -1)
    _audit(session, actor, "billing.print_receipt", payment.patient_id, "payment", payment.id)
    return receipt_pdf(_receipt_document(session, payment), language)
