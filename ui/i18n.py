"""The current user's language and the page-side translation shortcut."""

from __future__ import annotations

from typing import Any

import streamlit as st

from cims.config import get_settings
from cims.i18n import LANGUAGES, t

LANG_KEY = "lang"


def language() -> str:
    """The language chosen in this browser session (settings default otherwise)."""
    lang = st.session_state.get(LANG_KEY)
    if lang not in LANGUAGES:
        lang = get_settings().default_language
        st.session_state[LANG_KEY] = lang
    return str(lang)


def tr(key: str, **params: Any) -> str:
    """Translate ``key`` into the session's language."""
    return t(key, language(), **params)


def language_switch(container: Any = None) -> None:
    """简体中文 / English selector; the choice applies on the next run."""
    where = container if container is not None else st
    codes = list(LANGUAGES)
    current = language()
    choice = where.selectbox(
        "语言 / Language",
        codes,
        index=codes.index(current),
        format_func=lambda code: LANGUAGES[code],
        key="language_select",
    )
    if choice != current:
        st.session_state[LANG_KEY] = choice
        st.rerun()
