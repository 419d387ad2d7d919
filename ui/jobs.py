"""Background work each app process starts once (the audit sealer)."""

from __future__ import annotations

import streamlit as st

from cims.db import get_engine
from cims.security.audit_chain import ensure_sealer


@st.cache_resource(show_spinner=False)
def start_background_jobs() -> bool:
    """Start the audit sealer for this process (several processes share one advisory lock)."""
    ensure_sealer(get_engine())
    return True
