"""Patient portal: pay my bills online (WeChat Pay or Alipay, through the sandbox provider)."""

import streamlit as st

from cims.base import utcnow
from cims.billing.catalogue import BillingRefused
from cims.billing.online import OnlineCheckout, online_payment_status, start_online_payment
from cims.billing.printing import print_my_invoice, print_my_receipt
from cims.billing.sandbox import SandboxProvider
from cims.db import session_scope
from cims.portal.service import portal_overview
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.downloads import deferred
from ui.format import money, when
from ui.i18n import language, tr

CHECKOUT = "portal_checkout"

actor = page_guard(Privilege.PORTAL_SELF)
provider = SandboxProvider()
st.title(tr("portal_pay.title"))


def _checkout_panel(checkout: OnlineCheckout) -> None:
    """The provider's own checkout screen, as the sandbox shows it, then the outcome."""
    with session_scope() as db:
        status = online_payment_status(session=db, actor=actor, payment_id=checkout.payment_id)
    if status == "succeeded":
        st.success(tr("portal_pay.paid", amount=money(checkout.amount)))
        st.download_button(
            tr("portal_pay.receipt_pdf"),
            deferred(actor, print_my_receipt, payment_id=checkout.payment_id, language=language()),
            file_name=f"receipt-{checkout.payment_id}.pdf",
            mime="application/pdf",
            icon=":material/receipt:",
            on_click="ignore",
        )
        if st.button(tr("portal_pay.done"), type="primary"):
            st.session_state.pop(CHECKOUT)
            st.rerun()
        return
    if status == "failed":
        st.error(tr("portal_pay.failed"))
        if st.button(tr("portal_pay.done")):
            st.session_state.pop(CHECKOUT)
            st.rerun()
        return
    known = provider.query(checkout.provider_reference)
    if known is not None and known.status == "pending":
        with st.container(border=True):
            st.subheader(tr(f"portal_pay.checkout_{checkout.method}"))
            st.caption(tr("portal_pay.sandbox_note", reference=checkout.provider_reference))
            st.metric(tr("portal_pay.amount"), money(checkout.amount))
            pay, decline, leave = st.columns(3)
            if pay.button(tr("portal_pay.confirm"), type="primary", key="sandbox_pay"):
                provider.pay(checkout.provider_reference, "success")
                st.rerun()
            if decline.button(tr("portal_pay.decline"), key="sandbox_decline"):
                provider.pay(checkout.provider_reference, "decline")
                st.rerun()
            if leave.button(tr("portal_pay.leave"), key="sandbox_leave"):
                st.session_state.pop(CHECKOUT)
                st.rerun()
        return
    st.info(tr("portal_pay.waiting"))
    if st.button(tr("portal_pay.refresh")):
        st.rerun()


checkout = st.session_state.get(CHECKOUT)
if isinstance(checkout, OnlineCheckout):
    _checkout_panel(checkout)
    st.stop()

with session_scope() as db:
    overview = portal_overview(session=db, actor=actor, now=utcnow())
if not overview.open_invoices:
    st.success(tr("patient.no_bills"))
methods = {tr("method.wechat"): "wechat", tr("method.alipay"): "alipay"}
for invoice in overview.open_invoices:
    with st.container(border=True):
        left, right = st.columns([3, 2])
        left.write(f"**{invoice.invoice_no}** · {when(invoice.issued_at)}")
        left.caption(
            tr(
                "portal_pay.line",
                total=money(invoice.patient_amount),
                paid=money(invoice.paid_amount),
                due=invoice.due_date.isoformat() if invoice.due_date else "—",
            )
        )
        right.metric(tr("col.balance"), money(invoice.balance))
        left.download_button(
            tr("portal_pay.invoice_pdf"),
            deferred(actor, print_my_invoice, invoice_id=invoice.invoice_id, language=language()),
            file_name=f"{invoice.invoice_no}.pdf",
            mime="application/pdf",
            icon=":material/receipt_long:",
            key=f"invoice_pdf_{invoice.invoice_id}",
            on_click="ignore",
        )
        label = st.radio(
            tr("portal_pay.method"),
            list(methods),
            horizontal=True,
            key=f"pay_method_{invoice.invoice_id}",
        )
        if st.button(
            tr("portal_pay.pay", amount=money(invoice.balance)),
            type="primary",
            key=f"pay_{invoice.invoice_id}",
        ):
            try:
                with session_scope() as db:
                    st.session_state[CHECKOUT] = start_online_payment(
                        session=db,
                        actor=actor,
                        invoice_id=invoice.invoice_id,
                        method=methods[str(label)],
                        provider=provider,
                    )
            except BillingRefused as refusal:
                st.error(tr(refusal.key, **refusal.params))
            else:
                st.rerun()
