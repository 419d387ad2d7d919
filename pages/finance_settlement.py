"""Daily settlement (日结): my takings by method, counted cash, close the day; AR aging."""

import streamlit as st

from cims.billing.catalogue import BillingRefused, to_money
from cims.billing.invoices import AGING_BUCKETS, ar_aging
from cims.billing.models import PAYMENT_METHODS
from cims.billing.settlement import SettlementDay, close_day, settlement_preview
from cims.clock import local_today
from cims.db import session_scope
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.errors import run_safely
from ui.format import money, when
from ui.i18n import tr

FLASH = "settle_flash"
actor = page_guard(Privilege.CLOSE_SETTLEMENT)
st.title(tr("settle.title"))
METHODS = {m: tr(f"method.{m}") for m in PAYMENT_METHODS}


def totals(day: SettlementDay) -> None:
    """Received, refunded and expected by method (and counted once closed)."""
    rows = []
    for method, label in METHODS.items():
        row = {
            tr("col.method"): label,
            tr("settle.received"): money(day.received[method]),
            tr("settle.refunded"): money(day.refunded[method]),
            tr("settle.expected"): money(day.expected[method]),
        }
        if day.status == "closed":
            row[tr("settle.counted")] = money(day.counted.get(method, day.expected[method]))
            row[tr("settle.difference")] = money(day.differences.get(method, 0))
        rows.append(row)
    st.dataframe(rows, hide_index=True)


def close(day: SettlementDay) -> None:
    """Count the cash drawer, then close and lock the day."""
    with st.form("settle_close"):
        text = st.text_input(
            tr("settle.counted_cash"), str(day.expected["cash"]), key="settle_cash"
        )
        sure = st.checkbox(tr("settle.confirm"), key="settle_confirm")
        pressed = st.form_submit_button(tr("settle.close"), type="primary")
    if not pressed:
        return
    if not sure:
        st.warning(tr("settle.tick_to_confirm"))
        return
    try:
        counted = {"cash": to_money(text)}
        with session_scope() as db:
            closed = close_day(session=db, actor=actor, day=day.day, counted=counted)
    except BillingRefused as refusal:
        st.error(tr(refusal.key, **refusal.params))
        return
    st.session_state[FLASH] = (
        tr("settle.closed_with_difference", count=len(closed.differences))
        if closed.differences
        else tr("settle.closed_balanced")
    )
    st.rerun()


def render() -> None:
    if flash := st.session_state.pop(FLASH, None):
        st.success(flash)
    today = local_today()
    with session_scope() as db:
        day = settlement_preview(session=db, actor=actor, day=today)
        aging = ar_aging(session=db, actor=actor, today=today)
    st.caption(tr("common.today", day=today.isoformat()))
    left, right = st.columns(2)
    left.metric(tr("settle.total"), money(day.total))
    right.metric(tr("settle.payments"), day.payment_count)
    totals(day)
    if day.status == "closed":
        st.info(tr("settle.closed_at", at=when(day.closed_at)))
    else:
        close(day)
    st.subheader(tr("settle.aging"))
    st.dataframe(
        [
            {
                tr("settle.bucket"): tr(f"aging.{bucket}"),
                tr("settle.invoices"): aging.counts[bucket],
                tr("settle.outstanding"): money(aging.buckets[bucket]),
            }
            for bucket in AGING_BUCKETS
        ],
        hide_index=True,
    )
    st.caption(tr("settle.aging_total", total=money(aging.total)))


run_safely(render)
