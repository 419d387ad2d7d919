"""Patient portal: ask a doctor online, read the replies, answer or close."""

import streamlit as st

from cims.appointments.booking import list_bookable_departments
from cims.db import session_scope
from cims.engagement.consultation import (
    ThreadView,
    attach_to_my_thread,
    close_my_thread,
    download_my_thread_file,
    list_my_threads,
    open_my_thread,
    read_my_thread,
    reply_to_my_thread,
)
from cims.engagement.errors import InvalidEngagement
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.errors import run_safely
from ui.format import localised, plain, when
from ui.i18n import tr
from ui.thread_files import file_button, file_form

FLASH = "portal_messages_flash"
actor = page_guard(Privilege.PORTAL_SELF)


def refused(refusal: InvalidEngagement) -> None:
    for problem in refusal.problems:
        st.error(tr(problem))


def new_question() -> None:
    with session_scope() as db:
        departments = {
            localised(zh, en): dept_id
            for dept_id, zh, en in list_bookable_departments(session=db, actor=actor)
        }
    with st.expander(tr("consult.new"), icon=":material/edit_square:"):
        with st.form("consult_new", clear_on_submit=False):
            department = st.selectbox(
                tr("consult.department"), list(departments), key="consult_department"
            )
            subject = st.text_input(tr("consult.subject"), key="consult_subject")
            body = st.text_area(tr("consult.message"), key="consult_body")
            send = st.form_submit_button(tr("consult.send"), type="primary")
        if send:
            try:
                with session_scope() as db:
                    open_my_thread(
                        session=db, actor=actor, department_id=departments[str(department)],
                        subject=subject, body=body,
                    )  # fmt: skip
            except InvalidEngagement as refusal:
                refused(refusal)
            else:
                st.session_state[FLASH] = tr("consult.sent")
                st.rerun()


def conversation(view: ThreadView) -> None:
    for item in view.messages:
        name = tr("consult.me") if item.mine else item.sender_name
        with st.chat_message("user" if item.mine else "assistant"):
            st.caption(f"{plain(name)} · {when(item.sent_at)}")
            st.markdown(plain(item.body))
            file_button(actor, item, view.thread.thread_id, download_my_thread_file)
    if view.thread.status == "closed":
        st.info(tr("consult.closed"))
        return
    if file_form(actor, view.thread.thread_id, attach_to_my_thread):
        st.rerun()
    with st.form("consult_reply", clear_on_submit=True):
        body = st.text_area(tr("consult.message"), key="consult_reply_body")
        send = st.form_submit_button(tr("consult.reply"), type="primary")
    close = st.button(tr("consult.close"), icon=":material/task_alt:")
    try:
        with session_scope() as db:
            if send:
                reply_to_my_thread(
                    session=db, actor=actor, thread_id=view.thread.thread_id, body=body
                )
            elif close:
                close_my_thread(session=db, actor=actor, thread_id=view.thread.thread_id)
    except InvalidEngagement as refusal:
        refused(refusal)
    else:
        if send or close:
            st.rerun()


def render() -> None:
    st.title(tr("consult.title"))
    if FLASH in st.session_state:
        st.success(st.session_state.pop(FLASH))
    new_question()
    with session_scope() as db:
        threads = list_my_threads(session=db, actor=actor)
    st.subheader(tr("consult.mine"))
    if not threads:
        st.info(tr("consult.none"))
        return
    st.metric(tr("consult.unread_total"), sum(t.unread for t in threads))
    labels = {
        f"#{t.thread_id} · "
        + tr(
            "consult.thread_label", subject=t.subject, unread=t.unread,
            status=tr(f"consult.status_{t.status}"),
        ): t.thread_id
        for t in threads
    }  # fmt: skip
    chosen = st.selectbox(tr("consult.choose"), list(labels), key="consult_thread")
    with session_scope() as db:
        view = read_my_thread(session=db, actor=actor, thread_id=labels[str(chosen)])
    conversation(view)


run_safely(render)
