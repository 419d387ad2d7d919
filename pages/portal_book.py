"""Patient portal: book a visit, and cancel or see my bookings."""

import datetime as dt

import streamlit as st

from cims.appointments.booking import (
    BookingRefused,
    book_my_appointment,
    cancel_my_appointment,
    list_bookable_departments,
    list_my_appointments,
    list_open_slots_for_me,
)
from cims.clock import local_today
from cims.config import get_settings
from cims.db import session_scope
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.format import hhmm, localised
from ui.i18n import tr

FLASH = "portal_booking_flash"

actor = page_guard(Privilege.PORTAL_SELF)
today = local_today()
st.title(tr("portal_book.title"))
if FLASH in st.session_state:
    st.success(st.session_state.pop(FLASH))

with session_scope() as db:
    departments = {
        localised(zh, en): dept_id
        for dept_id, zh, en in list_bookable_departments(session=db, actor=actor)
    }
    mine = list_my_appointments(session=db, actor=actor)

left, right = st.columns(2)
department = departments[
    left.selectbox(tr("booking.department"), list(departments), key="portal_department")
]
day = right.date_input(
    tr("booking.day"),
    value=today + dt.timedelta(days=1),
    min_value=today,
    max_value=today + dt.timedelta(days=get_settings().slot_horizon_days),
    key="portal_day",
)
with session_scope() as db:
    slots = list_open_slots_for_me(session=db, actor=actor, department_id=department, day=day)
if not slots:
    st.info(tr("booking.no_slots"))
else:
    times = {
        tr("booking.slot", time=hhmm(s.starts_at), doctor=s.doctor_name, left=s.places_left): s
        for s in slots
    }
    with st.form("portal_booking"):
        chosen = st.radio(tr("booking.time"), list(times), key="portal_time")
        reason = st.text_input(tr("booking.reason"), key="portal_reason")
        book = st.form_submit_button(tr("portal_book.book"), type="primary")
    if book:
        slot = times[str(chosen)]
        try:
            with session_scope() as db:
                book_my_appointment(session=db, actor=actor, slot_id=slot.slot_id, reason=reason)
        except BookingRefused as refusal:
            st.error(tr(refusal.key))
        else:
            when_text = f"{day.isoformat()} {hhmm(slot.starts_at)}"
            st.session_state[FLASH] = tr(
                "portal_book.booked", time=when_text, doctor=slot.doctor_name
            )
            st.rerun()

st.subheader(tr("portal_book.mine"))
if not mine:
    st.caption(tr("booking.none_upcoming"))
for row in mine:
    with st.container(border=True):
        left, right = st.columns([4, 1], vertical_alignment="center")
        where = localised(row.department_zh, row.department_en)
        left.write(
            f"**{row.scheduled_at:%Y-%m-%d %H:%M}** · {where} · {row.doctor_name or ''}"
            f" · {tr(f'appointment.{row.status}')}"
        )
        if row.status == "booked" and right.button(
            tr("booking.cancel"), key=f"portal_cancel{row.appointment_id}"
        ):
            try:
                with session_scope() as db:
                    cancel_my_appointment(
                        session=db, actor=actor, appointment_id=row.appointment_id, reason=""
                    )
            except BookingRefused as refusal:
                st.error(tr(refusal.key))
            else:
                st.session_state[FLASH] = tr("booking.cancelled")
                st.rerun()
