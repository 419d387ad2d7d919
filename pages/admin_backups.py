"""Admin backups: the newest backup and verification, back up now, verify any file."""

import streamlit as st

from cims.clock import to_local
from cims.config import get_settings
from cims.db import session_scope
from cims.ops.backup import VerifyReport
from cims.ops.backup_format import BackupError
from cims.ops.backup_service import back_up_now, backup_overview, verify_backup_file
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.errors import run_safely
from ui.format import when
from ui.i18n import tr

actor = page_guard(Privilege.MANAGE_BACKUPS)


def _show_report(report: VerifyReport) -> None:
    if report.ok:
        key = "backup.verify_restored" if report.restored else "backup.verify_integrity"
        st.success(tr(key, name=report.path.name))
    else:
        st.error(tr("backup.verify_failed", name=report.path.name))
        for problem in report.problems:
            st.caption(problem)


def _back_up() -> None:
    bar = st.progress(0.0, text=tr("backup.running"))
    try:
        with session_scope() as db:
            result = back_up_now(
                session=db,
                actor=actor,
                progress=lambda fraction, _step: bar.progress(fraction, text=tr("backup.running")),
            )
    except BackupError as problem:
        st.error(tr("backup.failed"))
        st.caption(str(problem))
    else:
        bar.progress(1.0, text=tr("backup.done", name=result.path.name))
        st.success(tr("backup.done", name=result.path.name))


def render() -> None:
    """Draw the page."""
    settings = get_settings()
    st.title(tr("backup.title"))
    st.caption(
        tr(
            "backup.schedule",
            at=settings.backup_at.strftime("%H:%M"),
            daily=settings.backup_keep_daily,
            weekly=settings.backup_keep_weekly,
            monthly=settings.backup_keep_monthly,
        )
    )
    if st.button(tr("backup.now"), type="primary", icon=":material/backup:", key="backup_now"):
        _back_up()

    with session_scope() as db:
        overview = backup_overview(session=db, actor=actor)
    st.caption(tr("backup.folder", folder=str(overview.folder)))
    latest = overview.latest
    left, right = st.columns(2)
    left.metric(
        tr("backup.last_backup"),
        when(to_local(latest.created_at)) if latest else tr("backup.never"),
    )
    if overview.last_verified is None:
        right.metric(tr("backup.last_verification"), tr("backup.never"))
    else:
        entry, record = overview.last_verified
        status = tr("backup.status_ok") if record.get("ok") else tr("backup.status_failed")
        right.metric(tr("backup.last_verification"), status, entry.name, delta_color="off")
        if not record.get("ok"):
            st.error(tr("backup.last_failed", name=entry.name))
    if not overview.private_key_configured:
        st.warning(tr("backup.no_private_key"))

    st.subheader(tr("backup.list"))
    if not overview.entries:
        st.info(tr("backup.none"))
    for entry in overview.entries:
        name_col, time_col, size_col, status_col, action_col = st.columns([4, 3, 2, 3, 2])
        name_col.write(entry.name)
        time_col.write(when(to_local(entry.created_at)))
        size_col.write(f"{entry.size / 1e6:.1f} MB")
        check = entry.verification
        if check is None:
            status_col.write(tr("backup.status_never"))
        elif check.get("ok"):
            status_col.write(f":green[{tr('backup.status_ok')}]")
        else:
            status_col.markdown(f":red[**{tr('backup.status_failed')}**]")
        if action_col.button(tr("backup.verify"), key=f"verify_{entry.name}"):
            with st.spinner(tr("backup.verifying")), session_scope() as db:
                report = verify_backup_file(session=db, actor=actor, name=entry.name)
            _show_report(report)


run_safely(render)
