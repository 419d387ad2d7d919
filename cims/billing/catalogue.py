"""The price catalogue: the price in effect on a day, and price changes that never look back.

A price change closes the current row (``effective_to``) and adds a new one; charges keep
the ``price_item_id`` and ``unit_price`` they were posted with, so nothing already charged or
invoiced changes. ``BillingRefused`` (a translatable refusal) lives here because every
billing module builds on the catalogue.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cims.billing.models import PriceItem
from cims.clock import local_today
from cims.security import audit
from cims.security.rbac import Actor, Privilege, requires

CENT = Decimal("0.01")
MAX_MONEY: Final = Decimal("10000000000")  # NUMERIC(12,2): up to 9,999,999,999.99


class BillingRefused(ValueError):
    """A billing action the rules do not allow; ``key`` is an i18n key, ``params`` its fields."""

    def __init__(self, key: str, **params: Any) -> None:
        self.key = key
        self.params = params
        super().__init__(key)


def to_money(value: object, *, key: str = "billing.amount_invalid") -> Decimal:
    """A Decimal with at most two decimals (never from a float); refused otherwise."""
    if isinstance(value, float | bool):
        raise BillingRefused(key)
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as bad:
        raise BillingRefused(key) from bad
    # NUMERIC(12,2) holds at most 10 digits before the point; larger would overflow the
    # column (and quantize itself fails past the context precision).
    if not amount.is_finite() or abs(amount) >= MAX_MONEY or amount != amount.quantize(CENT):
        raise BillingRefused(key)
    return amount.quantize(CENT)


def round_cents(value: Decimal) -> Decimal:
    """Half-up to the cent (the rule the demo data and invoices use)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class PriceRow:
    """A catalogue price as shown to finance staff."""

    price_item_id: int
    code: str
    name_zh: str
    name_en: str
    category: str
    unit: str
    unit_price: Decimal
    effective_from: dt.date
    effective_to: dt.date | None


def _in_effect(day: dt.date) -> tuple[Any, ...]:
    return (
        PriceItem.effective_from <= day,
        or_(PriceItem.effective_to.is_(None), PriceItem.effective_to > day),
    )


def price_on(*, session: Session, code: str, day: dt.date) -> PriceItem:
    """The catalogue row of ``code`` in effect on ``day`` (refused if there is none)."""
    row = session.scalar(select(PriceItem).where(PriceItem.code == code, *_in_effect(day)))
    if row is None:
        raise BillingRefused("billing.price_unknown", code=code)
    return row


def _row(item: PriceItem) -> PriceRow:
    return PriceRow(
        price_item_id=item.id,
        code=item.code,
        name_zh=item.name_zh,
        name_en=item.name_en,
        category=item.category,
        unit=item.unit,
        unit_price=item.unit_price,
        effective_from=item.effective_from,
        effective_to=item.effective_to,
    )


@requires(Privilege.VIEW_BILLING)
def list_prices(*, session: Session, actor: Actor, day: dt.date | None = None) -> list[PriceRow]:
    """Every catalogue price in effect on ``day`` (today by default), by code."""
    on = day or local_today()
    items = session.scalars(select(PriceItem).where(*_in_effect(on)).order_by(PriceItem.code))
    return [_row(item) for item in items]


@requires(Privilege.MANAGE_PRICES)
def change_price(
    *,
    session: Session,
    actor: Actor,
    code: str,
    new_price: Decimal,
    effective_from: dt.date,
) -> PriceRow:
    """End the current price of ``code`` at ``effective_from`` and add the new price from then.

    Refused when back-dated (a change never rewrites the past), negative, or not after the
    current row's start; a later change already scheduled must be made from that row.
    """
    price = to_money(new_price, key="billing.price_invalid")
    if price < 0:
        raise BillingRefused("billing.price_invalid")
    if effective_from < local_today():
        raise BillingRefused("billing.price_backdated")
    rows = session.scalars(
        select(PriceItem)
        .where(PriceItem.code == code)
        .order_by(PriceItem.effective_from)
        .with_for_update()
    ).all()
    if not rows:
        raise BillingRefused("billing.price_unknown", code=code)
    current = rows[-1]
    if current.effective_to is not None or effective_from <= current.effective_from:
        raise BillingRefused("billing.price_change_overlaps")
    current.effective_to = effective_from
    current.updated_by_id = actor.user_id
    added = PriceItem(
        code=current.code,
        name_zh=current.name_zh,
        name_en=current.name_en,
        category=current.category,
        unit=current.unit,
        unit_price=price,
        effective_from=effective_from,
        created_by_id=actor.user_id,
    )
    session.add(added)
    session.flush()
    audit.record(
        session,
        actor,
        "billing.change_price",
        object_type="price_item",
        object_id=added.id,
        detail={
            "code": code,
            "old_price": str(current.unit_price),
            "new_price": str(price),
            "effective_from": effective_from.isoformat(),
        },
    )
    return _row(added)
