"""Invoice and receipt PDFs: every name prints (rare characters too), amounts add up,
both languages; printing is privilege-checked and audited, patients print only their own."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_printables import RARE, _embedded_fonts, _text

import factories
from cims.base import utcnow
from cims.billing.catalogue import BillingRefused
from cims.billing.models import Charge, Invoice, InvoiceLine, Payment, PriceItem
from cims.billing.printing import print_invoice, print_my_invoice, print_my_receipt, print_receipt
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied


def _paid_bill(session: Session) -> tuple[Invoice, Payment]:
    patient = factories.patient(
        session, family_name=RARE, given_name="田三", full_name=f"{RARE}田三"
    )
    item = PriceItem(
        code=f"LAB-HBA1C-{utcnow().timestamp()}",
        name_zh="糖化血红蛋白",
        name_en="HbA1c",
        category="lab",
        unit="次",
        unit_price=Decimal("80.00"),
        effective_from=utcnow().date(),
    )
    session.add(item)
    session.flush()
    invoice = Invoice(
        invoice_no=f"INV-T{utcnow().timestamp():.0f}",
        patient_id=patient.id,
        status="partly_paid",
        issued_at=utcnow(),
        total_amount=Decimal("160.00"),
        insurance_amount=Decimal("112.00"),
        patient_amount=Decimal("48.00"),
        paid_amount=Decimal("30.00"),
    )
    session.add(invoice)
    session.flush()
    charge = Charge(
        patient_id=patient.id,
        price_item_id=item.id,
        source_type="manual",
        service_date=utcnow().date(),
        description="糖化血红蛋白 / HbA1c",
        quantity=Decimal("2"),
        unit_price=Decimal("80.00"),
        amount=Decimal("160.00"),
        insurance_amount=Decimal("112.00"),
        patient_amount=Decimal("48.00"),
        posted_at=utcnow(),
        invoice_id=invoice.id,
    )
    session.add(charge)
    session.flush()
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
    payment = Payment(
        invoice_id=invoice.id,
        patient_id=patient.id,
        method="wechat",
        amount=Decimal("30.00"),
        idempotency_key=f"print-{invoice.invoice_no}",
        received_at=utcnow(),
    )
    session.add(payment)
    session.flush()
    return invoice, payment


def test_the_invoice_lists_every_charge_with_both_shares_in_both_languages(
    session: Session,
) -> None:
    invoice, _ = _paid_bill(session)
    cashier = factories.actor(session, "finance")
    chinese = print_invoice(session=session, actor=cashier, invoice_id=invoice.id, language="zh")
    text = _text(chinese)
    for expected in (
        RARE + "田三",
        invoice.invoice_no,
        "糖化血红蛋白",
        "¥160.00",
        "¥112.00",
        "¥18.00",
    ):
        assert expected in text, expected
    assert _embedded_fonts(chinese)
    english = _text(
        print_invoice(session=session, actor=cashier, invoice_id=invoice.id, language="en")
    )
    assert "Invoice" in english and "HbA1c" in english and "WeChat Pay" in english
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.patient_id == invoice.patient_id)
    ).all()
    assert actions == ["billing.print_invoice", "billing.print_invoice"]


def test_a_receipt_shows_the_payment_and_what_is_still_owed(session: Session) -> None:
    invoice, payment = _paid_bill(session)
    cashier = factories.actor(session, "finance")
    text = _text(
        print_receipt(session=session, actor=cashier, payment_id=payment.id, language="en")
    )
    assert "Received ¥30.00 (WeChat Pay)" in text and "¥18.00" in text
    assert invoice.invoice_no in text and RARE in text


def test_patients_print_only_their_own_and_clinicians_not_at_all(session: Session) -> None:
    invoice, payment = _paid_bill(session)
    owner = factories.actor(session, "patient", patient_id=invoice.patient_id)
    assert print_my_receipt(session=session, actor=owner, payment_id=payment.id, language="zh")
    stranger = factories.actor(session, "patient", patient_id=factories.patient(session).id)
    with pytest.raises(BillingRefused):
        print_my_invoice(session=session, actor=stranger, invoice_id=invoice.id, language="zh")
    with pytest.raises(AccessDenied):
        print_invoice(
            session=session,
            actor=factories.actor(session, "doctor"),
            invoice_id=invoice.id,
            language="zh",
        )
