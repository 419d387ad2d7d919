"""Billing on the demo hospital's data: posting is idempotent and prices match the demo's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from cims.billing.charges import post_charges_for_encounter
from cims.billing.invoices import ar_aging, list_open_invoices
from cims.billing.models import Charge, Invoice, InvoiceLine, Payment
from cims.billing.settlement import settlement_preview
from cims.clock import local_today
from cims.records.models import Encounter
from cims.security.accounts import build_actor
from cims.security.models import User
from cims.security.rbac import Actor


@pytest.fixture(scope="module")
def demo(seeded_app_database: Callable[..., AbstractContextManager[str]]) -> Iterator[Session]:
    """A session on a small seeded demo hospital, rolled back at the end."""
    with seeded_app_database("billing_demo", patients=150, seed=3) as url:
        engine = create_engine(url)
        with Session(engine) as db:
            yield db
            db.rollback()
        engine.dispose()


def _cashier(db: Session) -> Actor:
    user = db.scalar(select(User).where(User.username == "finance"))
    assert user is not None
    return build_actor(db, user)


def test_posting_demo_encounters_again_charges_nothing_new(demo: Session) -> None:
    cashier = _cashier(demo)
    before = demo.scalar(select(func.count()).select_from(Charge))
    for encounter_id in demo.scalars(select(Encounter.id).order_by(Encounter.id)):
        result = post_charges_for_encounter(session=demo, actor=cashier, encounter_id=encounter_id)
        assert result.posted == [] and result.unpriced == [], encounter_id
    assert demo.scalar(select(func.count()).select_from(Charge)) == before


def test_reposting_voided_demo_charges_gives_the_same_prices_and_shares(demo: Session) -> None:
    cashier = _cashier(demo)
    open_stays = demo.scalars(
        select(Charge.encounter_id)
        .where(Charge.invoice_id.is_(None), Charge.voided.is_(False))
        .distinct()
    ).all()
    assert open_stays, "the demo has current admissions with uninvoiced charges"
    for encounter_id in open_stays:
        old = demo.scalars(
            select(Charge).where(Charge.encounter_id == encounter_id, Charge.voided.is_(False))
        ).all()
        for charge in old:
            charge.voided, charge.voided_at, charge.void_reason = True, charge.posted_at, "test"
        demo.flush()
        again = post_charges_for_encounter(session=demo, actor=cashier, encounter_id=encounter_id)

        def shape(rows: list[Charge]) -> list[tuple[str, Decimal, Decimal, Decimal]]:
            return sorted((c.source_type, c.quantity, c.amount, c.insurance_amount) for c in rows)

        assert shape(again.posted) == shape(list(old)), encounter_id


def test_demo_invoices_add_up_and_reports_read_them(demo: Session) -> None:
    cashier = _cashier(demo)
    mismatched = demo.scalar(
        select(func.count()).select_from(
            select(Invoice.id)
            .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)
            .group_by(Invoice.id, Invoice.total_amount)
            .having(func.sum(InvoiceLine.amount) != Invoice.total_amount)
            .subquery()
        )
    )
    assert mismatched == 0
    aging = ar_aging(session=demo, actor=cashier, today=local_today())
    owed = demo.scalar(
        select(func.sum(Invoice.patient_amount - Invoice.paid_amount)).where(
            Invoice.status.in_(("issued", "partly_paid"))
        )
    )
    assert aging.total == owed and aging.total > 0
    assert list_open_invoices(session=demo, actor=cashier)
    day = settlement_preview(session=demo, actor=cashier, day=local_today())
    taken = demo.scalar(
        select(func.count()).where(
            Payment.cashier_id == cashier.user_id, Payment.received_at >= func.current_date()
        )
    )
    assert day.payment_count > 0 and taken is not None
