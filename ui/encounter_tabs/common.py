"""What the encounter tabs share: the encounter loaded once per run, messages, labels."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import streamlit as st

from cims.db import session_scope
from cims.records.encounters import EncounterView, InvalidRecord, list_encounter
from cims.security.rbac import Actor
from ui.i18n import tr

_VIEW = "encounter_view"
_FLASH = "encounter_flash"


def forget() -> None:
    """Drop the loaded encounter (the page calls this at the top of every run)."""
    st.session_state.pop(_VIEW, None)


def current_view(actor: Actor, encounter_id: int) -> EncounterView:
    """The encounter with its rows, loaded (and audited) once per run."""
    cached = st.session_state.get(_VIEW)
    if isinstance(cached, EncounterView) and cached.encounter.id == encounter_id:
        return cached
    with session_scope() as db:
        view = list_encounter(session=db, actor=actor, encounter_id=encounter_id)
    st.session_state[_VIEW] = view
    return view


def labels(prefix: str, options: Iterable[str]) -> dict[str, str]:
    """Translated option labels computed now (format_func may run outside the language)."""
    return {option: tr(f"{prefix}{option}") for option in options}


def act(action: Callable[[], Any], done_key: str) -> bool:
    """Run one service call; show its problems, or remember the success and rerun."""
    try:
        action()
    except InvalidRecord as refusal:
        for problem in refusal.problems:
            st.error(tr(problem))
        return False
    except LookupError:
        st.error(tr("records.not_active"))
        return False
    st.session_state[_FLASH] = done_key
    forget()
    st.rerun()
    return True  # pragma: no cover - st.rerun does not return


def show_flash() -> None:
    """The success message of the action that caused this run, once."""
    key = st.session_state.pop(_FLASH, None)
    if key:
        st.success(tr(key))


def void_control(
    prefix: str, choices: dict[int, str], button_key: str, on_void: Callable[[int, str], None]
) -> None:
    """A pick-one, give-a-reason, confirm control (void, stop, cancel)."""
    if not choices:
        return
    with st.expander(tr(f"encounter.{button_key}")):
        chosen = st.selectbox(
            tr(f"encounter.{prefix}_choice"),
            list(choices),
            format_func=choices.__getitem__,
            key=f"{button_key}_choice",
        )
        reason = st.text_input(tr(f"encounter.{prefix}_reason"), key=f"{button_key}_reason")
        if st.button(tr(f"encounter.{button_key}"), key=f"{button_key}_go"):
            act(lambda: on_void(chosen, reason), f"encounter.{button_key}_done")
