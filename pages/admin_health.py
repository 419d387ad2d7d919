"""Admin: the installation's health at a glance, and how the scheduled jobs last ran."""

import streamlit as st

from cims.db import get_engine
from cims.ops.health import health_report, overall
from cims.ops.scheduler import last_runs
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.format import when
from ui.i18n import tr

ICONS = {"ok": ":material/check_circle:", "warn": ":material/warning:", "fail": ":material/error:"}

actor = page_guard(Privilege.MANAGE_BACKUPS)
st.title(tr("health.title"))
checks = health_report(get_engine())
verdict = overall(checks)
{"ok": st.success, "warn": st.warning, "fail": st.error}[verdict](tr(f"health.level_{verdict}"))
for check in checks:
    line = f"**{tr(f'health.check_{check.name}')}** — {tr(check.message, **check.params)}"
    box = {"ok": st.markdown, "warn": st.warning, "fail": st.error}[check.level]
    box(f"{ICONS[check.level]} {line}")

st.subheader(tr("health.jobs"))
for name, run in sorted(last_runs(get_engine()).items()):
    st.caption(
        tr(
            "health.job_line",
            job=name,
            at=when(run.finished_at or run.started_at),
            status=tr(f"jobs.status_{run.status}"),
        )
    )
if st.button(tr("common.refresh"), icon=":material/refresh:"):
    st.rerun()
