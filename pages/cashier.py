"""Cashier: find a patient, invoice their charges, take payments, request and approve refunds."""

import uuid
from collections.abc import Callable
from typing import Any

import streamlit as st

from cims.billing import invoices as inv
from cims.billing.catalogue import BillingRefused, to_money
from cims.billing.charges import post_pending_charges
from cims.billing.models import PAYMENT_METHODS
from cims.billing.payments import take_payment
from cims.billing.printing import print_invoice, print_receipt
from cims.billing.refunds import approve_refund, list_waiting_refunds, reject_refund, request_refund
from cims.db import session_scope
from cims.patients.search import search_patients
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.downloads import deferred
from ui.errors import run_safely
from ui.format import money, plain, when
from ui.i18n import language, tr

FLASH, HITS = "cashier_flash", "cashier_hits"
actor = page_guard(Privilege.TAKE_PAYMENTS)
st.title(tr("cashier.title"))
METHODS = {m: tr(f"method.{m}") for m in PAYMENT_METHODS}
AMOUNTS: dict[str, Callable[[Any], object]] = {
    "line_amount": lambda x: money(x.amount),
    "patient_share": lambda x: money(x.patient_amount),
}


def act(action: Callable[..., Any], done_key: str, **kwargs: Any) -> None:
    """One service call; a refusal becomes its translated message, success a flash and rerun."""
    try:
        with session_scope() as db:
            action(session=db, actor=actor, **kwargs)
    except BillingRefused as refusal:
        st.error(tr(refusal.key, **refusal.params))
        return
    st.session_state[FLASH] = tr(done_key)
    st.rerun()


def form_key(name: str, *widgets: str) -> str:
    """A form's idempotency key, made once and kept after use, so a double click or a retry
    resends it; only "new" (which also forgets the typed values) makes another."""
    if st.session_state.get(f"{name}_used") and st.button(tr("cashier.new_form"), key=f"{name}_n"):
        for key in (name, f"{name}_used", *widgets):
            st.session_state.pop(key, None)
        st.rerun()
    return str(st.session_state.setdefault(name, uuid.uuid4().hex))


def submitted(name: str, text: str) -> Any:
    """The typed amount as Decimal once the form's key is marked used, or None if not money."""
    st.session_state[f"{name}_used"] = True
    try:
        return to_money(text)
    except BillingRefused as refusal:
        st.error(tr(refusal.key))
        return None


def table(rows: list[Any], **columns: Callable[[Any], object]) -> None:
    """A dataframe whose column titles are the translated keys ``cashier.<name>``."""
    data = [{tr(f"cashier.{k}"): str(get(row)) for k, get in columns.items()} for row in rows]
    st.dataframe(data, hide_index=True)


def payment_form(bill: inv.InvoiceView) -> None:
    n, name = bill.invoice_id, f"cashier_pay_key_{bill.invoice_id}"
    idempotency_key = form_key(name, f"cashier_amount_{n}")
    with st.form(f"cashier_pay_{n}"):
        options, label = list(METHODS), METHODS.__getitem__
        method = st.radio(tr("cashier.method"), options, format_func=label, horizontal=True)
        text = st.text_input(tr("cashier.amount"), str(bill.balance), key=f"cashier_amount_{n}")
        pressed = st.form_submit_button(tr("cashier.take_payment"), type="primary")
    if pressed and (amount := submitted(name, text)) is not None:
        act(take_payment, "cashier.paid", invoice_id=n, amount=amount, method=method,
            idempotency_key=idempotency_key)  # fmt: skip


def refund_form(bill: inv.InvoiceView) -> None:
    paid = [p for p in bill.payments if p.status in ("succeeded", "partly_refunded")]
    labels = {
        p.payment_id: f"{METHODS[p.method]} {money(p.amount - p.refunded_amount)} "
        f"{when(p.received_at)}"
        for p in paid
    }
    if not labels:
        return
    name = f"cashier_refund_key_{bill.invoice_id}"
    with st.expander(tr("cashier.refund")):
        idempotency_key = form_key(name, "cashier_refund_amount", "cashier_refund_reason")
        with st.form(f"cashier_refund_{bill.invoice_id}"):
            payment_id = st.selectbox(tr("cashier.payment"), list(labels), format_func=labels.get)
            text = st.text_input(tr("cashier.amount"), key="cashier_refund_amount")
            reason = st.text_input(tr("cashier.refund_reason"), key="cashier_refund_reason")
            pressed = st.form_submit_button(tr("cashier.request_refund"))
    if pressed and (amount := submitted(name, text)) is not None:
        act(request_refund, "cashier.refund_requested", payment_id=payment_id, amount=amount,
            reason=reason, idempotency_key=idempotency_key)  # fmt: skip


def printouts(bill: inv.InvoiceView) -> None:
    """The invoice and each payment's receipt as PDF, built (and audited) on click."""
    cols = st.columns(1 + len(bill.payments))
    lang = language()
    cols[0].download_button(
        tr("cashier.invoice_pdf"), deferred(actor, print_invoice, invoice_id=bill.invoice_id,
        language=lang), file_name=f"{bill.invoice_no}.pdf", mime="application/pdf",
        icon=":material/receipt_long:", key=f"cashier_pdf_{bill.invoice_id}", on_click="ignore",
    )  # fmt: skip
    for col, pay in zip(cols[1:], bill.payments, strict=True):
        if pay.status in ("succeeded", "partly_refunded", "refunded"):
            col.download_button(
                tr("cashier.receipt_pdf", amount=money(pay.amount)), deferred(actor,
                print_receipt, payment_id=pay.payment_id, language=lang),
                file_name=f"receipt-{pay.payment_id}.pdf", mime="application/pdf",
                icon=":material/receipt:", key=f"cashier_receipt_{pay.payment_id}",
                on_click="ignore",
            )  # fmt: skip


def invoice_panel(bill: inv.InvoiceView) -> None:
    status = tr(f"invoice_status.{bill.status}")
    st.markdown(f"**{bill.invoice_no}** · {status} · " + tr(
        "cashier.totals", total=money(bill.total_amount), insured=money(bill.insurance_amount),
        due=money(bill.patient_amount), paid=money(bill.paid_amount), balance=money(bill.balance),
    ))  # fmt: skip
    table(list(bill.lines), item=lambda x: x.description, quantity=lambda x: x.quantity, **AMOUNTS)
    printouts(bill)
    if bill.status == "draft" and st.button(tr("cashier.issue"), key="cashier_issue"):
        act(inv.issue_invoice, "cashier.issued", invoice_id=bill.invoice_id)
    if bill.status in inv.PAYABLE:
        payment_form(bill)
    refund_form(bill)


def patient_panel(patient_id: int) -> None:
    with session_scope() as db:
        # What the doctors ordered and prescribed since the last visit to the desk.
        post_pending_charges(session=db, actor=actor, patient_id=patient_id)
        charges = inv.list_uninvoiced_charges(session=db, actor=actor, patient_id=patient_id)
        bills = inv.list_invoices(session=db, actor=actor, patient_id=patient_id)
    st.subheader(tr("cashier.uninvoiced"))
    if not charges:
        st.caption(tr("cashier.no_charges"))
    else:
        table(charges, date=lambda x: x.service_date, item=lambda x: x.description, **AMOUNTS)
        if st.button(tr("cashier.create_invoice"), key="cashier_create"):
            act(inv.create_invoice, "cashier.invoice_created", patient_id=patient_id)
    st.subheader(tr("cashier.invoices"))
    labels = {
        b.invoice_id: f"{b.invoice_no} · {tr('invoice_status.' + b.status)} · {money(b.balance)}"
        for b in bills
    }
    if not labels:
        st.caption(tr("cashier.no_invoices"))
        return
    chosen = st.selectbox(tr("cashier.invoice"), list(labels), format_func=labels.get)
    invoice_panel(next(b for b in bills if b.invoice_id == chosen))


def refunds_to_approve() -> None:
    if not actor.can(Privilege.APPROVE_REFUNDS):
        return
    with session_scope() as db:
        waiting = list_waiting_refunds(session=db, actor=actor)
    waiting = [r for r in waiting if r.requested_by_id != actor.user_id]  # four eyes
    if waiting:
        st.subheader(tr("cashier.refunds_waiting"))
    for r in waiting:
        left, mid, right = st.columns([4, 1, 1])
        left.write(
            f"{r.requested_by} · {METHODS[r.method]} · {money(r.amount)} · {plain(r.reason)}"
        )
        if mid.button(tr("cashier.approve"), key=f"cashier_approve_{r.refund_id}"):
            act(approve_refund, "cashier.refund_approved", refund_id=r.refund_id)
        if right.button(tr("cashier.reject"), key=f"cashier_reject_{r.refund_id}"):
            act(reject_refund, "cashier.refund_rejected", refund_id=r.refund_id)


def render() -> None:
    if flash := st.session_state.pop(FLASH, None):
        st.success(flash)
    with st.form("cashier_find"):
        query = st.text_input(tr("cashier.find"), key="cashier_query")
        if st.form_submit_button(tr("cashier.search")):
            with session_scope() as db:
                st.session_state[HITS] = search_patients(session=db, actor=actor, query=query)
    labels = {h.patient_id: f"{h.mrn} · {h.full_name}" for h in st.session_state.get(HITS) or []}
    if labels:
        patient_panel(st.selectbox(tr("cashier.patient"), list(labels), format_func=labels.get))
    elif HITS in st.session_state:
        st.info(tr("cashier.none_found"))
    refunds_to_approve()


run_safely(render)
