"""Orders & results tab: place and cancel orders, record lab results (flag computed)."""

from __future__ import annotations

import streamlit as st

from cims.db import session_scope
from cims.records.models import ORDER_STATUSES, ORDER_TYPES
from cims.records.narrative import localise_name
from cims.records.orders import cancel_order, place_order, record_result
from cims.security.rbac import Actor
from ui.encounter_tabs.common import act, current_view, labels, void_control
from ui.i18n import language, tr


def render(actor: Actor, patient_id: int, encounter_id: int) -> None:
    """The encounter's orders and results, and their forms."""
    view = current_view(actor, encounter_id)
    lang = language()
    types = labels("encounter.order_type_", ORDER_TYPES)
    status = labels("encounter.status_", ORDER_STATUSES)
    if view.orders:
        st.dataframe(
            [
                {
                    tr("encounter.col_type"): types[o.order_type],
                    tr("encounter.col_code"): o.code,
                    tr("encounter.col_description"): localise_name(o.description, lang),
                    tr("encounter.col_status"): status[o.status],
                }
                for o in view.orders
            ],
            hide_index=True,
        )
    else:
        st.info(tr("encounter.no_orders"))
    if view.encounter.status == "open":
        _order_form(actor, encounter_id, types)

        def cancel(order_id: int, reason: str) -> None:
            with session_scope() as db:
                cancel_order(session=db, actor=actor, order_id=order_id, reason=reason)

        live = {
            o.id: f"{o.code} {localise_name(o.description, lang)}"
            for o in view.orders
            if o.status in ("ordered", "in_progress")
        }
        void_control("cancel", live, "cancel_order", cancel)
    st.subheader(tr("encounter.results"))
    if view.results:
        st.dataframe(
            [
                {
                    tr("encounter.result_name"): localise_name(r.name, lang),
                    tr("encounter.col_value"): f"{r.value_num:f} {r.unit or ''}".strip(),
                    tr("encounter.col_range"): _range(r.ref_low, r.ref_high),
                    tr("encounter.col_flag"): r.abnormal_flag or "",
                }
                for r in view.results
            ],
            hide_index=True,
        )
    else:
        st.info(tr("encounter.no_results"))
    orders = {o.id: o.code for o in view.orders if o.status != "cancelled"}
    _result_form(actor, encounter_id, orders)


def _range(low: object, high: object) -> str:
    return f"{'' if low is None else low}–{'' if high is None else high}"


def _order_form(actor: Actor, encounter_id: int, types: dict[str, str]) -> None:
    with st.form("order_form", clear_on_submit=True):
        order_type = st.selectbox(
            tr("encounter.order_type"), ORDER_TYPES, format_func=types.__getitem__,
            key="order_type",
        )  # fmt: skip
        code = st.text_input(tr("encounter.order_code"), key="order_code")
        description = st.text_input(tr("encounter.order_description"), key="order_description")
        submitted = st.form_submit_button(tr("encounter.place_order"))
    if submitted:

        def place() -> None:
            with session_scope() as db:
                place_order(
                    session=db, actor=actor, encounter_id=encounter_id, order_type=order_type,
                    code=code, description=description,
                )  # fmt: skip

        act(place, "encounter.order_placed")


def _result_form(actor: Actor, encounter_id: int, orders: dict[int, str]) -> None:
    choices: dict[int, str] = {0: tr("encounter.no_order"), **orders}
    with st.form("result_form", clear_on_submit=True):
        order_id = st.selectbox(
            tr("encounter.result_order"), list(choices), format_func=choices.__getitem__,
            key="result_order",
        )  # fmt: skip
        a, b, c = st.columns(3)
        code = a.text_input(tr("encounter.result_code"), key="result_code")
        name = b.text_input(tr("encounter.result_name"), key="result_name")
        value = c.text_input(tr("encounter.result_value"), key="result_value")
        unit = a.text_input(tr("encounter.result_unit"), key="result_unit")
        low = b.text_input(tr("encounter.ref_low"), key="result_low")
        high = c.text_input(tr("encounter.ref_high"), key="result_high")
        submitted = st.form_submit_button(tr("encounter.record_result"))
    if submitted:

        def save() -> None:
            with session_scope() as db:
                record_result(
                    session=db, actor=actor, code=code, name=name, value=value, unit=unit,
                    ref_low=low, ref_high=high, order_id=order_id or None,
                    encounter_id=None if order_id else encounter_id,
                )  # fmt: skip

        act(save, "encounter.result_recorded")
