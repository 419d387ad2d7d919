"""Manager dashboard: KPIs and charts from the de-identified analytics snapshot."""

import datetime as dt
from typing import Any

import pandas as pd
import streamlit as st

from analytics.charts import FIGURES
from analytics.queries import KPI_NAMES, SUPPRESSED, VISIT_TYPES, Filters, display_table
from analytics.service import (
    NoSnapshot,
    department_names,
    export_table,
    load_frames,
    snapshot_status,
    view_dashboard,
)
from analytics.snapshot import snapshot_mtime
from cims.clock import to_local
from cims.db import session_scope
from cims.security.incidents import lockdown_state
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.downloads import deferred
from ui.errors import run_safely
from ui.format import money, percent_change, when
from ui.i18n import language, tr

actor = page_guard(Privilege.VIEW_ANALYTICS)
lang = language()


@st.cache_data(show_spinner=False, max_entries=64)
def _frames(path: str, mtime: float, filters: Filters) -> dict[str, pd.DataFrame]:
    """Shared by every viewer: keyed by the snapshot file's mtime and the filters."""
    return load_frames(path, mtime, filters)


@st.cache_data(show_spinner=False, max_entries=4)
def _names(path: str, mtime: float) -> dict[str, tuple[str, str]]:
    return department_names(path)


def _kpi_text(name: str, value: Any) -> str:
    if value is None or pd.isna(value):
        return "—"
    if name in ("revenue", "collections", "outstanding"):
        return money(float(value))
    if name in ("no_show_rate", "readmission_rate"):
        return f"{value:.1%}"
    if name in ("visits", "admissions"):
        return f"{int(value):,}"
    return f"{value:.1f}"


def _filters(today: dt.date, dept_labels: dict[str, str]) -> Filters:
    type_labels = {v: tr(f"analytics.type_{v}") for v in VISIT_TYPES}
    cols = st.columns([2, 2, 2])
    picked = cols[0].date_input(
        tr("analytics.date_range"),
        value=(today - dt.timedelta(days=89), today),
        key="dash_range",
    )
    start, end = (picked[0], picked[-1]) if isinstance(picked, tuple) and picked else (today, today)
    depts = cols[1].multiselect(
        tr("analytics.departments"),
        list(dept_labels),
        format_func=dept_labels.__getitem__,
        key="dash_departments",
    )
    types = cols[2].multiselect(
        tr("analytics.visit_types"),
        list(type_labels),
        format_func=type_labels.__getitem__,
        key="dash_types",
    )
    return Filters(start, end, tuple(depts), tuple(types))


def _kpis(frame: pd.DataFrame) -> None:
    rows = frame.set_index("kpi")
    hidden = bool(rows["suppressed"].any())
    for offset in range(0, len(KPI_NAMES), 4):
        cols = st.columns(4)
        for col, name in zip(cols, KPI_NAMES[offset : offset + 4], strict=False):
            row = rows.loc[name]
            value = SUPPRESSED if hidden else _kpi_text(name, row["value"])
            change = None if hidden or pd.isna(row["change"]) else float(row["change"])
            col.metric(tr(f"analytics.kpi_{name}"), value, percent_change(change))


def _chart(name: str, frame: pd.DataFrame, names: dict[str, str], locked: bool) -> None:
    st.subheader(tr(f"analytics.chart_{name}"))
    if frame.empty or frame["suppressed"].all():
        st.caption(tr("analytics.no_data"))
        return
    st.plotly_chart(FIGURES[name](frame, lang, names), key=f"chart_{name}")
    with st.expander(tr("analytics.drill_down")):
        st.dataframe(display_table(frame), hide_index=True)
        if locked:
            st.caption(tr("common.lockdown"))
            return
        left, right = st.columns(2)
        for col, fmt in ((left, "csv"), (right, "xlsx")):
            col.download_button(
                tr(f"analytics.download_{fmt}"),
                deferred(actor, export_table, name=name, frame=frame, fmt=fmt),
                file_name=f"{name}.{fmt}",
                key=f"download_{name}_{fmt}",
                icon=":material/download:",
            )


def render() -> None:
    st.title(tr("analytics.dashboard_title"))
    info = snapshot_status()
    if info is None:
        st.info(tr("analytics.no_snapshot"))
        return
    built = to_local(info.built_at)
    hours = info.age().total_seconds() / 3600
    st.caption(tr("analytics.snapshot_age", built=when(built), hours=f"{hours:.1f}"))
    pairs = _names(str(info.path), snapshot_mtime(info.path))
    names = {code: (zh if lang == "zh" else en) for code, (zh, en) in pairs.items()}
    filters = _filters(built.date(), names)
    try:
        with session_scope() as db:
            board = view_dashboard(session=db, actor=actor, filters=filters, loader=_frames)
            locked = lockdown_state(db) is not None
    except NoSnapshot:
        st.info(tr("analytics.no_snapshot"))
        return
    _kpis(board.frames["kpis"])
    left, right = st.columns(2)
    for index, name in enumerate(FIGURES):
        with left if index % 2 == 0 else right:
            _chart(name, board.frames[name], names, locked)
    st.caption(tr("analytics.suppression_note"))


run_safely(render)
