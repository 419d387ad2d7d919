"""Front-desk booking: find the patient, pick a department, day and time; cancel or move."""

import datetime as dt

import streamlit as st

from cims.appointments.booking import (
    BookingRefused,
    book_appointment,
    cancel_appointment,
    list_open_slots,
    list_patient_appointments,
    reschedule_appointment,
)
from cims.appointments.service import list_departments
from cims.clock import local_today
from cims.db import session_scope
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.format import hhmm, localised
from ui.i18n import tr
from ui.patient_picker import pick_patient

actor = page_guard(Privilege.MANAGE_APPOINTMENTS)
today = local_today()
st.title(tr("booking.title"))

patient = pick_patient(actor, "booking_patient")
if patient is None:
    st.caption(tr("booking.pick_first"))
    st.stop()

with session_scope() as db:
    departments = {
        localised(d.name_zh, d.name_en): d.id for d in list_departments(session=db, actor=actor)
    }
left, right = st.columns(2)
department = departments[
    left.selectbox(tr("booking.department"), list(departments), key="booking_department")
]
day = right.date_input(
    tr("booking.day"),
    value=today,
    min_value=today,
    max_value=today + dt.timedelta(days=28),
    key="booking_day",
)
with session_scope() as db:
    slots = list_open_slots(session=db, actor=actor, department_id=department, day=day)
    upcoming = list_patient_appointments(session=db, actor=actor, patient_id=patient.patient_id)


def _done(message: str) -> None:
    st.session_state["booking_flash"] = message
    st.rerun()


if "booking_flash" in st.session_state:
    st.success(st.session_state.pop("booking_flash"))

if not slots:
    st.info(tr("booking.no_slots"))
else:
    times = {
        tr("booking.slot", time=hhmm(s.starts_at), doctor=s.doctor_name, left=s.places_left): s
        for s in slots
    }
    with st.form("booking_form"):
        chosen = st.selectbox(tr("booking.time"), list(times), key="booking_time")
        reason = st.text_input(tr("booking.reason"), key="booking_reason")
        book = st.form_submit_button(tr("booking.book"), type="primary")
    if book:
        slot = times[str(chosen)]
        try:
            with session_scope() as db:
                booked = book_appointment(
                    session=db,
                    actor=actor,
                    patient_id=patient.patient_id,
                    slot_id=slot.slot_id,
                    reason=reason,
                )
                booked_id = booked.id
        except BookingRefused as refusal:
            st.error(tr(refusal.key))
        else:
            _done(
                tr(
                    "booking.booked",
                    name=patient.full_name,
                    time=f"{day.isoformat()} {hhmm(slot.starts_at)}",
                    doctor=slot.doctor_name,
                    number=booked_id,
                )
            )

st.subheader(tr("booking.upcoming"))
if not upcoming:
    st.caption(tr("booking.none_upcoming"))
for row in upcoming:
    with st.container(border=True):
        where = localised(row.department_zh, row.department_en)
        st.write(
            f"**{row.scheduled_at:%Y-%m-%d %H:%M}** · {where} · {row.doctor_name or ''}"
            f" · {tr(f'appointment.{row.status}')}"
        )
        if row.status != "booked":
            continue
        cancel_col, move_col = st.columns(2)
        with cancel_col.popover(tr("booking.cancel"), icon=":material/event_busy:"):
            why = st.text_input(tr("booking.cancel_reason"), key=f"why{row.appointment_id}")
            if st.button(tr("booking.cancel_confirm"), key=f"cancel{row.appointment_id}"):
                try:
                    with session_scope() as db:
                        cancel_appointment(
                            session=db, actor=actor, appointment_id=row.appointment_id, reason=why
                        )
                except BookingRefused as refusal:
                    st.error(tr(refusal.key))
                else:
                    _done(tr("booking.cancelled"))
        if slots:
            with move_col.popover(tr("booking.move"), icon=":material/event_repeat:"):
                st.caption(tr("booking.move_help", day=day.isoformat()))
                target = st.selectbox(
                    tr("booking.time"), list(times), key=f"move_to{row.appointment_id}"
                )
                if st.button(tr("booking.move_confirm"), key=f"move{row.appointment_id}"):
                    try:
                        with session_scope() as db:
                            reschedule_appointment(
                                session=db,
                                actor=actor,
                                appointment_id=row.appointment_id,
                                slot_id=times[str(target)].slot_id,
                            )
                    except BookingRefused as refusal:
                        st.error(tr(refusal.key))
                    else:
                        _done(tr("booking.moved"))
