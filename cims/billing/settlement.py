"""Daily settlement (日结): a cashier's takings by method, matched against what was counted.

A cashier's day is the payments they took (received that hospital-local day) minus the
refunds they completed that day, by method. Closing stores the expected totals, the counted
amounts and the differences, links the day's payments to the settlement and locks the day:
afterwards ``take_payment`` and ``approve_refund`` for that cashier on that date are refused
(they share-lock the settlement row that closing takes for update).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.billing.catalogue import BillingRefused, to_money
from cims.billing.models import PAYMENT_METHODS, DailySettlement, Payment, Refund
from cims.billing.payments import COUNTED
from cims.clock import day_bounds, local_today, to_local
from cims.security import audit
from cims.security.rbac import Actor, Privilege, requires

ZERO: Final = Decimal("0.00")


@dataclass(frozen=True)
class SettlementDay:
    """One cashier's day: received, refunded and net by method; counted once closed."""

    day: dt.date
    status: str  # open / closed
    received: dict[str, Decimal]
    refunded: dict[str, Decimal]
    expected: dict[str, Decimal]  # received minus refunded
    payment_count: int
    total: Decimal
    counted: dict[str, Decimal]
    differences: dict[str, Decimal]  # counted minus expected, only where they differ
    closed_at: dt.datetime | None  # hospital-local


def _sums(session: Session, cashier_id: int, day: dt.date) -> tuple[dict[str, Decimal], ...]:
    start, end = day_bounds(day)
    received = dict.fromkeys(PAYMENT_METHODS, ZERO)
    counts: dict[str, Decimal] = {"payments": ZERO}
    for method, amount, n in session.execute(
        select(Payment.method, func.sum(Payment.amount), func.count())
        .where(
            Payment.cashier_id == cashier_id,
            Payment.received_at >= start,
            Payment.received_at < end,
            Payment.status.in_(COUNTED),
        )
        .group_by(Payment.method)
    ):
        received[method] = Decimal(amount)
        counts["payments"] += n
    refunded = dict.fromkeys(PAYMENT_METHODS, ZERO)
    for method, amount in session.execute(
        select(Payment.method, func.sum(Refund.amount))
        .join(Payment, Payment.id == Refund.payment_id)
        .where(
            Refund.approved_by_id == cashier_id,
            Refund.status == "completed",
            Refund.completed_at >= start,
            Refund.completed_at < end,
        )
        .group_by(Payment.method)
    ):
        refunded[method] = Decimal(amount)
    return received, refunded, counts


def _as_decimals(stored: dict[str, Any] | None) -> dict[str, Decimal]:
    return {k: Decimal(str(v)) for k, v in (stored or {}).items()}


def _day(session: Session, cashier_id: int, day: dt.date) -> SettlementDay:
    received, refunded, counts = _sums(session, cashier_id, day)
    expected = {m: received[m] - refunded[m] for m in PAYMENT_METHODS}
    row = session.scalar(
        select(DailySettlement).where(
            DailySettlement.cashier_id == cashier_id, DailySettlement.business_date == day
        )
    )
    closed = row is not None and row.status == "closed"
    counted = _as_decimals(row.counted) if closed and row else {}
    if closed and row and row.totals:  # what was expected when the day was closed
        expected = _as_decimals(row.totals.get("expected"))
    differences = {
        m: counted.get(m, expected[m]) - expected[m]
        for m in PAYMENT_METHODS
        if counted.get(m, expected[m]) != expected[m]
    }
    return SettlementDay(
        day=day,
        status="closed" if closed else "open",
        received=received,
        refunded=refunded,
        expected=expected,
        payment_count=int(counts["payments"]),
        total=sum(expected.values(), ZERO),
        counted=counted,
        differences=differences,
        closed_at=to_local(row.closed_at) if row else None,
    )


@requires(Privilege.VIEW_BILLING)
def settlement_preview(*, session: Session, actor: Actor, day: dt.date) -> SettlementDay:
    """The signed-in cashier's totals by method for ``day`` (and the close, if closed)."""
    result = _day(session, actor.user_id, day)
    audit.record(
        session,
        actor,
        "billing.settlement_preview",
        object_type="settlement_day",
        object_id=day.isoformat(),
    )
    return result


@requires(Privilege.CLOSE_SETTLEMENT)
def close_day(
    *, session: Session, actor: Actor, day: dt.date, counted: dict[str, Decimal]
) -> SettlementDay:
    """Close the cashier's day: store totals and counts, flag differences, lock the day.

    Methods missing from ``counted`` are taken as matched (electronic methods are matched
    against the providers); closing twice, or a day still to come, is refused.
    """
    if day > local_today():
        raise BillingRefused("billing.day_in_future")
    if set(counted) - set(PAYMENT_METHODS):
        raise BillingRefused("billing.method_invalid")
    given = {m: to_money(v) for m, v in counted.items()}
    if any(v < 0 for v in given.values()):
        raise BillingRefused("billing.amount_invalid")
    session.execute(
        insert(DailySettlement)
        .values(cashier_id=actor.user_id, business_date=day, status="open")
        .on_conflict_do_nothing(index_elements=["cashier_id", "business_date"])
    )
    row = session.scalar(
        select(DailySettlement)
        .where(DailySettlement.cashier_id == actor.user_id, DailySettlement.business_date == day)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert row is not None
    if row.status == "closed":
        raise BillingRefused("billing.day_already_closed")
    received, refunded, counts = _sums(session, actor.user_id, day)
    expected = {m: received[m] - refunded[m] for m in PAYMENT_METHODS}
    filled = {m: given.get(m, expected[m]) for m in PAYMENT_METHODS}
    differences = {m: filled[m] - expected[m] for m in PAYMENT_METHODS if filled[m] != expected[m]}
    row.status = "closed"
    row.closed_at = utcnow()
    row.closed_by_id = actor.user_id
    row.totals = {
        "expected": {m: str(v) for m, v in expected.items()},
        "received": {m: str(v) for m, v in received.items()},
        "refunded": {m: str(v) for m, v in refunded.items()},
        "differences": {m: str(v) for m, v in differences.items()},
        "payment_count": int(counts["payments"]),
    }
    row.counted = {m: str(v) for m, v in filled.items()}
    start, end = day_bounds(day)
    session.execute(
        update(Payment)
        .where(
            Payment.cashier_id == actor.user_id,
            Payment.received_at >= start,
            Payment.received_at < end,
            Payment.status.in_(COUNTED),
            Payment.settlement_id.is_(None),
        )
        .values(settlement_id=row.id)
    )
    session.flush()
    audit.record(
        session,
        actor,
        "billing.close_day",
        object_type="daily_settlement",
        object_id=row.id,
        detail={
            "day": day.isoformat(),
            "total": str(sum(expected.values(), ZERO)),
            "differences": len(differences),
        },
    )
    return _day(session, actor.user_id, day)
