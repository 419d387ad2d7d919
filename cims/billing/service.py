"""Finance views: a day's takings and what is still owed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cims.billing.models import Invoice, Payment
from cims.clock import day_bounds
from cims.security import audit
from cims.security.rbac import Actor, Privilege, requires

OPEN_STATUSES = ("issued", "partly_paid")


@dataclass(frozen=True)
class Takings:
    """Money received on one day, by method, for everyone and for the signed-in cashier."""

    day: dt.date
    by_method: dict[str, Decimal]
    mine_by_method: dict[str, Decimal]
    payment_count: int
    total: Decimal
    mine_total: Decimal
    outstanding: Decimal
    open_invoices: int


@requires(Privilege.VIEW_BILLING)
def takings_for_day(*, session: Session, actor: Actor, day: dt.date) -> Takings:
    """Totals of succeeded payments received on ``day`` and open receivables."""
    start, end = day_bounds(day)
    received = (
        Payment.received_at >= start,
        Payment.received_at < end,
        Payment.status.in_(("succeeded", "partly_refunded", "refunded")),
    )
    net = Payment.amount - Payment.refunded_amount
    by_method: dict[str, Decimal] = {}
    mine: dict[str, Decimal] = {}
    count = 0
    is_mine = (Payment.cashier_id == actor.user_id).label("is_mine")
    rows = session.execute(
        select(Payment.method, is_mine, func.sum(net), func.count())
        .where(*received)
        .group_by(Payment.method, is_mine)
    )
    for method, mine_row, amount, n in rows:
        by_method[method] = by_method.get(method, Decimal("0")) + amount
        count += n
        if mine_row:
            mine[method] = mine.get(method, Decimal("0")) + amount
    outstanding, open_count = session.execute(
        select(
            func.coalesce(func.sum(Invoice.patient_amount - Invoice.paid_amount), 0),
            func.count(),
        ).where(Invoice.status.in_(OPEN_STATUSES), Invoice.voided.is_(False))
    ).one()
    audit.record(
        session,
        actor,
        "billing.view_takings",
        object_type="takings_day",
        object_id=day.isoformat(),
    )
    return Takings(
        day=day,
        by_method=by_method,
        mine_by_method=mine,
        payment_count=count,
        total=sum(by_method.values(), Decimal("0")),
        mine_total=sum(mine.values(), Decimal("0")),
        outstanding=Decimal(outstanding),
        open_invoices=open_count,
    )
