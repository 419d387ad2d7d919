"""Admin and data staff: the analytics snapshot's age, and a refresh with a progress bar."""

import pandas as pd
import streamlit as st

from analytics.service import refresh_snapshot, snapshot_status
from analytics.snapshot import SOURCES, SnapshotBusy
from cims.clock import to_local
from cims.db import session_scope
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.errors import run_safely
from ui.format import when
from ui.i18n import tr

actor = page_guard(Privilege.VIEW_ANALYTICS, Privilege.IMPORT_DATA)


def _status() -> None:
    info = snapshot_status()
    if info is None:
        st.info(tr("analytics.no_snapshot_yet"))
        return
    hours = info.age().total_seconds() / 3600
    st.caption(
        tr("analytics.snapshot_age", built=when(to_local(info.built_at)), hours=f"{hours:.1f}")
    )
    rows = [
        {tr("analytics.col_table"): table, tr("analytics.col_rows"): f"{count:,}"}
        for table, count in info.rows.items()
    ]
    full = when(to_local(info.full_built_at)) if info.full_built_at else "—"
    st.caption(tr("analytics.snapshot_mode", mode=tr(f"analytics.mode_{info.mode}"), full=full))
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def _refresh() -> None:
    parquet = st.checkbox(tr("analytics.with_parquet"), key="refresh_parquet")
    full = st.checkbox(tr("analytics.full_rebuild"), key="refresh_full")
    if not st.button(tr("analytics.refresh_now"), type="primary", icon=":material/refresh:"):
        return
    bar = st.progress(0.0, text=tr("analytics.refreshing"))
    steps = {name: tr("analytics.step", table=name) for name in (*SOURCES, "parquet", "done")}
    steps["rollups"] = tr("analytics.step_rollups")

    def progress(fraction: float, step: str) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=steps.get(step, step))

    try:
        with session_scope() as db:
            info = refresh_snapshot(
                session=db, actor=actor, parquet=parquet, full=full, progress=progress
            )
    except SnapshotBusy:
        st.warning(tr("analytics.refresh_busy"))
        return
    st.success(tr("analytics.refreshed", seconds=f"{info.seconds:.1f}"))


def render() -> None:
    st.title(tr("analytics.refresh_title"))
    st.markdown(tr("analytics.refresh_help"))
    _refresh()
    _status()


run_safely(render)
