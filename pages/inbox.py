"""My reminders: the inbox of every signed-in person (staff and patients), ack and snooze."""

from typing import Any

import streamlit as st

from cims.db import session_scope
from cims.engagement.errors import InvalidEngagement
from cims.engagement.reminders import (
    ReminderView,
    acknowledge_reminder,
    count_unread_reminders,
    list_my_reminders,
    snooze_reminder,
)
from ui.auth import page_guard
from ui.errors import run_safely
from ui.format import when
from ui.i18n import language, tr

FLASH = "inbox_flash"
actor = page_guard()


def message(reminder: ReminderView) -> str:
    """The reminder's text in the session language (``*_zh``/``*_en`` params pick one)."""
    suffix = "_zh" if language() == "zh" else "_en"
    params: dict[str, Any] = {}
    for name, value in reminder.params.items():
        if name.endswith(("_zh", "_en")):
            if name.endswith(suffix):
                params[name[:-3]] = value
        else:
            params[name] = value
    try:
        return tr(reminder.message_key, **params)
    except (KeyError, IndexError):  # a rule edited to carry other params
        return tr(reminder.message_key)


def act(reminder_id: int, snooze: bool) -> None:
    try:
        with session_scope() as db:
            if snooze:
                snooze_reminder(session=db, actor=actor, reminder_id=reminder_id, hours=24)
            else:
                acknowledge_reminder(session=db, actor=actor, reminder_id=reminder_id)
    except InvalidEngagement as refusal:
        for problem in refusal.problems:
            st.error(tr(problem))
    else:
        st.session_state[FLASH] = tr("inbox.done")
        st.rerun()


def render() -> None:
    st.title(tr("inbox.title"))
    if FLASH in st.session_state:
        st.success(st.session_state.pop(FLASH))
    show_done = st.toggle(tr("inbox.show_done"), key="inbox_show_done")
    with session_scope() as db:
        waiting = count_unread_reminders(session=db, actor=actor)
        reminders = list_my_reminders(session=db, actor=actor, include_done=show_done)
    st.metric(tr("inbox.unread"), waiting)
    if not reminders:
        st.info(tr("inbox.empty"))
    for reminder in reminders:
        with st.container(border=True):
            left, middle, right = st.columns([5, 1, 1], vertical_alignment="center")
            left.markdown(f"**{message(reminder)}**")
            status = tr(f"inbox.status_{reminder.status}")
            left.caption(f"{when(reminder.created_at)} · {status}")
            if reminder.status != "acknowledged":
                if middle.button(
                    tr("inbox.acknowledge"), key=f"ack{reminder.reminder_id}",
                    icon=":material/done:",
                ):  # fmt: skip
                    act(reminder.reminder_id, snooze=False)
                if right.button(
                    tr("inbox.snooze"), key=f"snooze{reminder.reminder_id}",
                    icon=":material/snooze:",
                ):  # fmt: skip
                    act(reminder.reminder_id, snooze=True)


run_safely(render)
