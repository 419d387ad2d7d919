"""Patient portal: the visit assistant answers from the hospital's FAQ and points to pages."""

import contextlib

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from cims.db import session_scope
from cims.engagement.assistant import AssistantAnswer, ask_assistant
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.errors import run_safely
from ui.i18n import language, tr

HISTORY = "assistant_history"
PAGE_TITLES = {
    "pages/portal_book.py": "nav.portal_book",
    "pages/portal_pay.py": "nav.portal_pay",
    "pages/patient_home.py": "nav.patient_home",
    "pages/portal_messages.py": "nav.portal_messages",
}
actor = page_guard(Privilege.PORTAL_SELF)


def reply(answer: AssistantAnswer) -> None:
    """The assistant's turn: the FAQ answer and/or the intent, then a link to the page."""
    if answer.kind == "unsure":
        st.write(tr("assistant.unsure"))
    if answer.intent is not None:
        st.write(tr(f"assistant.intent_{answer.intent}"))
    if answer.answer:
        st.write(answer.answer)
    if answer.page in PAGE_TITLES:
        title = tr(PAGE_TITLES[answer.page])
        st.caption(tr("assistant.go", page=title))
        # A link needs the app's navigation; a page run on its own (AppTest) has none.
        with contextlib.suppress(StreamlitPageNotFoundError):
            st.page_link(answer.page, label=title, icon=":material/arrow_forward:")


def render() -> None:
    st.title(tr("assistant.title"))
    with st.chat_message("assistant"):
        st.write(tr("assistant.intro"))
    history: list[tuple[str, AssistantAnswer]] = st.session_state.setdefault(HISTORY, [])
    with st.form("assistant_ask", clear_on_submit=True):
        question = st.text_input(tr("assistant.ask"), key="assistant_question")
        asked = st.form_submit_button(tr("assistant.send"), type="primary")
    if asked and question.strip():
        with session_scope() as db:
            answer = ask_assistant(session=db, actor=actor, question=question, language=language())
        history.append((question.strip(), answer))
    for said, answer in reversed(history[-10:]):
        with st.chat_message("user"):
            st.write(said)
        with st.chat_message("assistant"):
            reply(answer)


run_safely(render)
