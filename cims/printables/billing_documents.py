"""Invoice (费用清单) and payment receipt (收据) as PDF, in Chinese or English."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from cims.i18n import t
from cims.printables.documents import _document, _finish, _line, _table, _when
from cims.records.narrative import localise_name


def _yuan(amount: Decimal) -> str:
    return f"¥{amount:,.2f}"


@dataclass(frozen=True)
class BillLine:
    """One charge as billed."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    insurance_amount: Decimal
    patient_amount: Decimal


@dataclass(frozen=True)
class PaymentLine:
    """One payment received on the invoice."""

    received_at: dt.datetime  # local time
    method: str
    amount: Decimal
    refunded: Decimal


@dataclass(frozen=True)
class InvoiceDocument:
    """Everything an invoice printout shows."""

    invoice_no: str
    patient_name: str
    mrn: str
    insurance_type: str
    status: str
    issued_at: dt.datetime | None  # local time
    due_date: dt.date | None
    lines: tuple[BillLine, ...]
    total: Decimal
    insurance: Decimal
    patient_share: Decimal
    paid: Decimal
    payments: tuple[PaymentLine, ...]


@dataclass(frozen=True)
class ReceiptDocument:
    """Everything a payment receipt shows."""

    receipt_no: str
    invoice_no: str
    patient_name: str
    mrn: str
    received_at: dt.datetime  # local time
    method: str
    amount: Decimal
    cashier: str
    balance_after: Decimal


def invoice_pdf(doc: InvoiceDocument, language: str) -> bytes:
    """The itemised bill: every charge with the insurance and patient shares, and payments."""
    pdf = _document(language)
    pdf.add_page()
    title = t("print.invoice_title", language)
    _line(pdf, t("app.title", language), size=12, height=7)
    _line(pdf, title, size=16, height=9)
    _line(pdf, t("print.invoice_number", language, number=doc.invoice_no), size=9)
    _line(
        pdf,
        t(
            "print.invoice_patient",
            language,
            name=doc.patient_name,
            mrn=doc.mrn,
            insurance=t(f"insurance.{doc.insurance_type}", language),
        ),
    )
    _line(
        pdf,
        t(
            "print.invoice_dates",
            language,
            issued=_when(doc.issued_at),
            due=doc.due_date.isoformat() if doc.due_date else "—",
            status=t(f"invoice_status.{doc.status}", language),
        ),
    )
    head = tuple(
        t(f"print.col_{c}", language)
        for c in ("item", "quantity", "unit_price", "amount", "insurance_share", "patient_share")
    )
    rows = [head] + [
        (
            localise_name(line.description, language),
            f"{line.quantity.normalize():f}",
            _yuan(line.unit_price),
            _yuan(line.amount),
            _yuan(line.insurance_amount),
            _yuan(line.patient_amount),
        )
        for line in doc.lines
    ]
    _table(pdf, rows, (70, 15, 22, 22, 22, 22))
    pdf.ln(3)
    _line(
        pdf,
        t(
            "print.invoice_totals",
            language,
            total=_yuan(doc.total),
            insurance=_yuan(doc.insurance),
            patient=_yuan(doc.patient_share),
            paid=_yuan(doc.paid),
            balance=_yuan(doc.patient_share - doc.paid),
        ),
        size=11,
        height=7,
    )
    if doc.payments:
        _line(pdf, t("print.payments", language), size=12, height=8)
        rows = [
            tuple(t(f"print.col_{c}", language) for c in ("time", "method", "paid", "refunded"))
        ]
        rows += [
            (
                _when(p.received_at),
                t(f"method.{p.method}", language),
                _yuan(p.amount),
                _yuan(p.refunded),
            )
            for p in doc.payments
        ]
        _table(pdf, rows, (45, 45, 40, 40))
    return _finish(pdf, title)


def receipt_pdf(doc: ReceiptDocument, language: str) -> bytes:
    """A half-page receipt for one payment."""
    pdf = _document(language, format=(148, 105))  # A6 landscape
    pdf.set_auto_page_break(auto=False)
    pdf.add_page()
    title = t("print.receipt_title", language)
    _line(pdf, t("app.title", language), size=11, height=6)
    _line(pdf, title, size=15, height=8)
    _line(pdf, t("print.receipt_number", language, number=doc.receipt_no), size=9)
    _line(pdf, t("print.receipt_patient", language, name=doc.patient_name, mrn=doc.mrn))
    _line(pdf, t("print.receipt_invoice", language, invoice=doc.invoice_no))
    _line(
        pdf,
        t(
            "print.receipt_amount",
            language,
            amount=_yuan(doc.amount),
            method=t(f"method.{doc.method}", language),
        ),
        size=13,
        height=8,
    )
    _line(pdf, t("print.receipt_balance", language, balance=_yuan(doc.balance_after)))
    _line(
        pdf,
        t("print.receipt_cashier", language, cashier=doc.cashier, at=_when(doc.received_at)),
        size=9,
    )
    return _finish(pdf, title)
