"""Doctor: online consultations (在线咨询) — answer, close, and prescribe online (在线处方)."""

import datetime as dt
from decimal import Decimal

import streamlit as st

from cims.appointments.booking import BookingRefused, list_open_slots
from cims.clock import local_today
from cims.db import session_scope
from cims.engagement.consultation import (
    ThreadRow,
    attach_to_thread,
    book_follow_up_from_thread,
    close_thread,
    download_thread_file,
    list_consultation_queue,
    prescribe_online,
    read_thread,
    reply_to_thread,
)
from cims.engagement.errors import InvalidEngagement
from cims.records.drugs import FORMULARY, FORMULARY_BY_CODE
from cims.records.encounters import InvalidRecord
from cims.records.narrative import localise_name
from cims.records.orders import AllergyConflict
from cims.security.care import open_break_glass
from cims.security.rbac import AccessDenied, Privilege
from ui.auth import page_guard
from ui.errors import run_safely
from ui.format import hhmm, plain, when
from ui.i18n import language, tr
from ui.thread_files import file_button, file_form

FLASH = "doctor_consult_flash"
actor = page_guard(Privilege.ANSWER_CONSULTATIONS)


def attempt(action, done: str) -> None:  # type: ignore[no-untyped-def]
    """Run one service call; translated problems, or a flash and a rerun."""
    try:
        with session_scope() as db:
            action(db)
    except (InvalidEngagement, InvalidRecord) as refusal:
        for problem in refusal.problems:
            st.error(tr(problem))
    except BookingRefused as refusal:
        st.error(tr(refusal.key))
    except ValueError:  # a break-glass reason that is too short
        st.error(tr("summary.reason_too_short"))
    except AllergyConflict as conflict:
        names = "; ".join(localise_name(a.substance, language()) for a in conflict.allergies)
        st.warning(tr("consult.rx_allergy", allergies=names))
    else:
        st.session_state[FLASH] = done
        st.rerun()


def prescription_form(thread_id: int) -> None:
    names = {d.code: localise_name(d.name, language()) for d in FORMULARY}
    by_label = {label: code for code, label in names.items()}
    with st.expander(tr("consult.rx_heading"), icon=":material/medication:"):
        with st.form("consult_rx"):
            label = st.selectbox(tr("encounter.drug"), list(by_label), key="consult_rx_drug")
            drug = FORMULARY_BY_CODE[by_label[str(label)]]
            a, b, c = st.columns(3)
            dose = a.number_input(tr("encounter.dose"), min_value=0.0, value=float(drug.dose))
            days = b.number_input(tr("encounter.duration"), 1, 365, drug.duration_days)
            quantity = c.number_input(
                tr("encounter.quantity"), min_value=0.0, value=float(drug.quantity)
            )
            override = st.text_input(tr("encounter.override_reason"), key="consult_rx_override")
            issue = st.form_submit_button(tr("consult.rx_issue"), type="primary")
        if issue:
            attempt(
                lambda db: prescribe_online(
                    session=db, actor=actor, thread_id=thread_id, drug_code=drug.code,
                    drug_name=drug.name, dose=Decimal(str(dose)), dose_unit=drug.dose_unit,
                    route=drug.route, frequency=drug.frequency, duration_days=int(days),
                    quantity=Decimal(str(quantity)), override_reason=override or None,
                ),
                tr("consult.rx_done", drug=names[drug.code]),
            )  # fmt: skip


def thread_panel(row: ThreadRow) -> None:
    try:
        with session_scope() as db:
            view = read_thread(session=db, actor=actor, thread_id=row.thread_id)
    except AccessDenied:
        st.warning(tr("consult.not_in_care"))
        if actor.can(Privilege.BREAK_GLASS):
            with st.form("consult_break_glass"):
                reason = st.text_input(tr("summary.break_glass_reason"))
                broken = st.form_submit_button(tr("summary.break_glass_submit"))
            if broken:
                attempt(
                    lambda db: open_break_glass(
                        session=db, actor=actor, patient_id=row.patient_id, reason=reason
                    ),
                    tr("summary.break_glass_banner"),
                )
        return
    for item in view.messages:
        with st.chat_message("user" if item.from_patient else "assistant"):
            st.caption(f"{plain(item.sender_name)} · {when(item.sent_at)}")
            st.markdown(plain(item.body))
            file_button(actor, item, row.thread_id, download_thread_file)
    if view.thread.status == "closed":
        st.info(tr("consult.closed"))
        return
    if file_form(actor, row.thread_id, attach_to_thread):
        st.rerun()
    with st.form("doctor_reply", clear_on_submit=True):
        body = st.text_area(tr("consult.message"), key="doctor_reply_body")
        send = st.form_submit_button(tr("consult.reply"), type="primary")
    if send:
        attempt(
            lambda db: reply_to_thread(session=db, actor=actor, thread_id=row.thread_id, body=body),
            tr("consult.sent"),
        )
    if st.button(tr("consult.close"), icon=":material/task_alt:"):
        attempt(
            lambda db: close_thread(session=db, actor=actor, thread_id=row.thread_id),
            tr("consult.closed"),
        )
    if actor.can(Privilege.PRESCRIBE):
        prescription_form(row.thread_id)
    if actor.can(Privilege.MANAGE_APPOINTMENTS) and row.department_id is not None:
        follow_up_form(row)


def follow_up_form(row: ThreadRow) -> None:
    with st.expander(tr("consult.follow_up"), icon=":material/event_repeat:"):
        day = st.date_input(
            tr("booking.day"), value=local_today() + dt.timedelta(days=7),
            min_value=local_today(), key="consult_fu_day",
        )  # fmt: skip
        with session_scope() as db:
            slots = list_open_slots(
                session=db, actor=actor, department_id=int(row.department_id or 0), day=day
            )
        times = {
            tr("booking.slot", time=hhmm(s.starts_at), doctor=s.doctor_name, left=s.places_left): s
            for s in slots
        }
        if not times:
            st.caption(tr("booking.no_slots"))
            return
        chosen = st.selectbox(tr("booking.time"), list(times), key="consult_fu_slot")
        if st.button(tr("consult.follow_up_book"), type="primary"):
            slot = times[str(chosen)]
            attempt(
                lambda db: book_follow_up_from_thread(
                    session=db, actor=actor, thread_id=row.thread_id, slot_id=slot.slot_id
                ),
                tr("consult.follow_up_done", time=f"{day.isoformat()} {hhmm(slot.starts_at)}"),
            )


def render() -> None:
    st.title(tr("consult.queue_title"))
    if FLASH in st.session_state:
        st.success(st.session_state.pop(FLASH))
    closed = st.toggle(tr("consult.include_closed"), key="doctor_consult_closed")
    with session_scope() as db:
        queue = list_consultation_queue(session=db, actor=actor, include_closed=closed)
    if not queue:
        st.info(tr("consult.queue_empty"))
        return
    st.metric(tr("consult.unread_total"), sum(t.unread for t in queue))
    labels = {
        f"#{t.thread_id} · "
        + tr(
            "consult.queue_label", name=t.patient_name, mrn=t.mrn, subject=t.subject,
            status=tr(f"consult.status_{t.status}"), unread=t.unread,
        ): t
        for t in queue
    }  # fmt: skip
    chosen = st.selectbox(tr("consult.choose"), list(labels), key="doctor_consult_thread")
    thread_panel(labels[str(chosen)])


run_safely(render)
