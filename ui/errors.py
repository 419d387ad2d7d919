"""The last line of defence: a translated message instead of a traceback."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

import streamlit as st

from cims.security.incidents import LockdownActive
from cims.security.rbac import AccessDenied
from cims.text_guard import InvalidText
from ui.i18n import tr

log = logging.getLogger("cims.ui")


def run_safely(render: Callable[[], object]) -> None:
    """Run a page; refusals and unexpected errors become one clear message (and a log line)."""
    try:
        render()
    except AccessDenied as refusal:
        log.info("access denied: %s", refusal)
        st.error(tr("common.access_denied"))
    except LockdownActive:
        st.error(tr("common.lockdown"))
    except InvalidText as refusal:  # e.g. a NUL character pasted into any text box
        for problem in refusal.problems:
            st.error(tr(problem))
    except Exception:
        reference = secrets.token_hex(4)
        log.exception("unexpected error (reference %s)", reference)
        st.error(tr("common.unexpected", reference=reference))
