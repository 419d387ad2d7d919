"""Finance home: today's takings by payment method, mine and the whole hospital's."""

import streamlit as st

from cims.billing.service import takings_for_day
from cims.clock import local_today
from cims.db import session_scope
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.format import money
from ui.i18n import tr

actor = page_guard(Privilege.VIEW_BILLING)
today = local_today()
with session_scope() as db:
    takings = takings_for_day(session=db, actor=actor, day=today)

st.title(tr("finance.title"))
st.caption(tr("common.today", day=today.isoformat()))
cols = st.columns(4)
cols[0].metric(tr("finance.total_today"), money(takings.total))
cols[1].metric(tr("finance.mine_today"), money(takings.mine_total))
cols[2].metric(tr("finance.payments_today"), takings.payment_count)
cols[3].metric(tr("finance.outstanding"), money(takings.outstanding))
st.caption(tr("finance.open_invoices", count=takings.open_invoices))

st.subheader(tr("finance.by_method"))
if takings.by_method:
    st.dataframe(
        [
            {
                tr("col.method"): tr(f"method.{method}"),
                tr("finance.hospital"): money(amount),
                tr("finance.mine"): money(takings.mine_by_method.get(method, 0)),
            }
            for method, amount in sorted(takings.by_method.items())
        ],
        hide_index=True,
    )
else:
    st.info(tr("finance.none_today"))
