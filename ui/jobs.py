"""Background work each app process starts once (the audit sealer, the daily jobs)."""

from __future__ import annotations

import streamlit as st

from analytics.jobs import register_analytics_jobs
from cims.config import get_settings
from cims.db import get_engine
from cims.logs import configure_logging
from cims.ops.scheduler import ensure_scheduler
from cims.security.audit_chain import ensure_sealer
from models.jobs import register_risk_jobs


@st.cache_resource(show_spinner=False)
def start_background_jobs() -> bool:
    """Start the audit sealer and the daily-job scheduler for this process.

    Several processes may run: sealers share one advisory lock, and each daily job's slot
    is claimed by exactly one process.
    """
    configure_logging(get_settings().log_level)
    ensure_sealer(get_engine())
    register_analytics_jobs()
    register_risk_jobs()
    ensure_scheduler(get_engine())
    return True
