"""Finance: price catalogue, charges, invoices, payments, refunds and daily settlement.

Money is NUMERIC(12,2) / Decimal everywhere; rows are voided, never deleted.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Index, Numeric, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from cims.base import Base, Tracked, Voidable, fk, one_of, pk, void_check

PRICE_CATEGORIES = (
    "registration",
    "consultation",
    "lab",
    "imaging",
    "procedure",
    "drug",
    "bed",
    "nursing",
)
CHARGE_SOURCES = ("order", "procedure", "prescription", "registration", "bed_day", "manual")
INVOICE_STATUSES = ("draft", "issued", "partly_paid", "paid", "void")
PAYMENT_METHODS = ("cash", "card", "wechat", "alipay", "insurance")
PAYMENT_STATUSES = ("pending", "succeeded", "failed", "refunded", "partly_refunded")
REFUND_STATUSES = ("requested", "approved", "rejected", "completed")


class PriceItem(Tracked, Base):
    """A catalogue price valid from a date; a change adds a new row, never rewrites."""

    __tablename__ = "price_items"
    __table_args__ = (
        UniqueConstraint("code", "effective_from"),
        one_of("category", PRICE_CATEGORIES),
        CheckConstraint("unit_price >= 0", name="price_not_negative"),
        CheckConstraint(
            "effective_to IS NULL OR effective_to > effective_from", name="effective_order"
        ),
    )

    id: Mapped[int] = pk()
    code: Mapped[str]
    name_zh: Mapped[str]
    name_en: Mapped[str]
    category: Mapped[str]
    unit: Mapped[str]
    unit_price: Mapped[Decimal]
    effective_from: Mapped[dt.date]
    effective_to: Mapped[dt.date | None]


class InsurancePlan(Tracked, Base):
    """Insurance share rules per insurance type (coverage rate of eligible charges)."""

    __tablename__ = "insurance_plans"
    __table_args__ = (
        CheckConstraint("coverage_rate >= 0 AND coverage_rate <= 1", name="rate_range"),
    )

    id: Mapped[int] = pk()
    insurance_type: Mapped[str] = mapped_column(unique=True)
    name_zh: Mapped[str]
    name_en: Mapped[str]
    coverage_rate: Mapped[Decimal] = mapped_column(Numeric(5, 4))
    inpatient_coverage_rate: Mapped[Decimal] = mapped_column(Numeric(5, 4))
    excluded_categories: Mapped[list[Any]]


class Charge(Voidable, Base):
    """A priced item posted to a patient's account from its clinical source."""

    __tablename__ = "charges"
    __table_args__ = (
        void_check(),
        one_of("source_type", CHARGE_SOURCES),
        CheckConstraint("amount = insurance_amount + patient_amount", name="shares_add_up"),
        Index("ix_charges_patient_time", "patient_id", "posted_at"),
        Index("ix_charges_uninvoiced", "patient_id", postgresql_where="invoice_id IS NULL"),
        # A clinical source is charged at most once (corrections void and re-post).
        Index(
            "uq_charges_source_live",
            "source_type",
            "source_id",
            "service_date",
            unique=True,
            postgresql_where="source_id IS NOT NULL AND NOT voided",
        ),
    )

    id: Mapped[int] = pk()
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    encounter_id: Mapped[int | None] = fk("encounters.id", index=True)
    price_item_id: Mapped[int] = fk("price_items.id", nullable=False)
    source_type: Mapped[str]
    source_id: Mapped[int | None]
    service_date: Mapped[dt.date]
    description: Mapped[str]
    quantity: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    unit_price: Mapped[Decimal]
    amount: Mapped[Decimal]
    insurance_amount: Mapped[Decimal]
    patient_amount: Mapped[Decimal]
    posted_at: Mapped[dt.datetime]
    invoice_id: Mapped[int | None] = fk("invoices.id", index=True)


class Invoice(Voidable, Base):
    """A bill built from charges: draft → issued → partly paid → paid, or void."""

    __tablename__ = "invoices"
    __table_args__ = (
        void_check(),
        one_of("status", INVOICE_STATUSES),
        CheckConstraint("paid_amount <= patient_amount", name="not_overpaid"),
        CheckConstraint("total_amount = insurance_amount + patient_amount", name="shares_add_up"),
        Index("ix_invoices_patient_time", "patient_id", "created_at"),
        Index(
            "ix_invoices_open", "due_date", postgresql_where="status IN ('issued','partly_paid')"
        ),
    )

    id: Mapped[int] = pk()
    invoice_no: Mapped[str] = mapped_column(unique=True)
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    encounter_id: Mapped[int | None] = fk("encounters.id")
    status: Mapped[str] = mapped_column(default="draft")
    issued_at: Mapped[dt.datetime | None]
    due_date: Mapped[dt.date | None]
    total_amount: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    insurance_amount: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    patient_amount: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    paid_amount: Mapped[Decimal] = mapped_column(default=Decimal("0"))


class InvoiceLine(Base):
    """A charge as it appears on an invoice (copied so the invoice never changes)."""

    __tablename__ = "invoice_lines"

    id: Mapped[int] = pk()
    invoice_id: Mapped[int] = fk("invoices.id", nullable=False, index=True)
    charge_id: Mapped[int] = fk("charges.id", nullable=False)
    description: Mapped[str]
    quantity: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    unit_price: Mapped[Decimal]
    amount: Mapped[Decimal]
    insurance_amount: Mapped[Decimal]
    patient_amount: Mapped[Decimal]

    __table_args__ = (UniqueConstraint("charge_id"),)


class DailySettlement(Base):
    """A cashier's day (日结): totals by method matched against payments, then locked."""

    __tablename__ = "daily_settlements"
    __table_args__ = (
        UniqueConstraint("cashier_id", "business_date"),
        one_of("status", ("open", "closed")),
    )

    id: Mapped[int] = pk()
    cashier_id: Mapped[int] = fk("users.id", nullable=False)
    business_date: Mapped[dt.date]
    status: Mapped[str] = mapped_column(default="open")
    totals: Mapped[dict[str, Any] | None]
    counted: Mapped[dict[str, Any] | None]
    closed_at: Mapped[dt.datetime | None]
    closed_by_id: Mapped[int | None] = fk("users.id")


class Payment(Tracked, Base):
    """Money received against an invoice; the idempotency key makes retries harmless."""

    __tablename__ = "payments"
    __table_args__ = (
        one_of("method", PAYMENT_METHODS),
        one_of("status", PAYMENT_STATUSES),
        CheckConstraint("amount > 0", name="positive_amount"),
        CheckConstraint("refunded_amount >= 0 AND refunded_amount <= amount", name="refund_range"),
        Index("ix_payments_patient_time", "patient_id", "received_at"),
        Index("ix_payments_cashier_time", "cashier_id", "received_at"),
    )

    id: Mapped[int] = pk()
    invoice_id: Mapped[int] = fk("invoices.id", nullable=False, index=True)
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    method: Mapped[str]
    amount: Mapped[Decimal]
    refunded_amount: Mapped[Decimal] = mapped_column(default=Decimal("0"), server_default="0")
    status: Mapped[str] = mapped_column(default="succeeded")
    idempotency_key: Mapped[str] = mapped_column(unique=True)
    provider: Mapped[str | None]  # sandbox, wechat, alipay, pos
    provider_reference: Mapped[str | None]
    received_at: Mapped[dt.datetime]
    cashier_id: Mapped[int | None] = fk("users.id")
    settlement_id: Mapped[int | None] = fk("daily_settlements.id")


class PaymentEvent(Base):
    """A callback or status event from a payment provider, kept verbatim for reconciliation."""

    __tablename__ = "payment_events"
    __table_args__ = (UniqueConstraint("provider", "provider_event_id"),)

    id: Mapped[int] = pk()
    payment_id: Mapped[int | None] = fk("payments.id", index=True)
    provider: Mapped[str]
    provider_event_id: Mapped[str]
    event_type: Mapped[str]
    payload: Mapped[dict[str, Any]]
    signature_valid: Mapped[bool]
    received_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class Refund(Tracked, Base):
    """A refund, approved by a second person, reversed through the original method."""

    __tablename__ = "refunds"
    __table_args__ = (
        one_of("status", REFUND_STATUSES),
        CheckConstraint("amount > 0", name="positive_amount"),
        CheckConstraint(
            "approved_by_id IS NULL OR approved_by_id <> requested_by_id", name="four_eyes"
        ),
    )

    id: Mapped[int] = pk()
    payment_id: Mapped[int] = fk("payments.id", nullable=False, index=True)
    amount: Mapped[Decimal]
    reason: Mapped[str]
    status: Mapped[str] = mapped_column(default="requested")
    requested_by_id: Mapped[int] = fk("users.id", nullable=False)
    requested_at: Mapped[dt.datetime]
    approved_by_id: Mapped[int | None] = fk("users.id")
    approved_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]
    provider_reference: Mapped[str | None]
    idempotency_key: Mapped[str] = mapped_column(unique=True)
