"""Data staff workspace: a read-only SQL console over the de-identified snapshot."""

import streamlit as st

from analytics.charts import quick_chart
from analytics.console import QueryFailed, QueryRefused
from analytics.service import (
    InvalidSavedQuery,
    NoSnapshot,
    export_query,
    list_saved_queries,
    run_query,
    save_query,
    snapshot_status,
)
from cims.clock import to_local
from cims.db import session_scope
from cims.security.incidents import lockdown_state
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.downloads import deferred
from ui.errors import run_safely
from ui.format import when
from ui.i18n import tr

actor = page_guard(Privilege.QUERY_ANALYTICS)
EXAMPLE = (
    "SELECT department_code, encounter_type, count(*) AS visits\n"
    "FROM visits GROUP BY ALL ORDER BY visits DESC"
)


def _saved() -> None:
    with session_scope() as db:
        saved = list_saved_queries(session=db, actor=actor)
    if not saved:
        return
    labels = {
        item.id: item.name + ("" if item.mine else f" · {tr('analytics.shared_by_colleague')}")
        for item in saved
    }
    chosen = st.selectbox(
        tr("analytics.saved_queries"),
        [None, *labels],
        format_func=lambda i: labels.get(i, "—"),
        key="console_saved",
    )
    if chosen is not None and st.button(tr("analytics.open_query"), key="console_open"):
        st.session_state["console_sql"] = next(item.sql for item in saved if item.id == chosen)
        st.rerun()


def _save(sql: str) -> None:
    with st.expander(tr("analytics.save_query")):
        name = st.text_input(tr("analytics.query_name"), key="console_name")
        shared = st.checkbox(tr("analytics.share_query"), key="console_shared")
        if st.button(tr("analytics.save"), key="console_save"):
            try:
                with session_scope() as db:
                    save_query(session=db, actor=actor, name=name, sql=sql, shared=shared)
            except InvalidSavedQuery as refusal:
                for problem in refusal.problems:
                    st.error(tr(problem, kind="", name=""))
                return
            st.success(tr("analytics.saved", name=name))


def _run(sql: str) -> None:
    """Run once per click; the outcome stays in the session for the following reruns."""
    try:
        with session_scope() as db:
            result = run_query(session=db, actor=actor, sql=sql)
    except QueryRefused as refusal:
        st.session_state["console_outcome"] = ("error", refusal.reason, refusal.params)
    except QueryFailed as failure:
        st.session_state["console_outcome"] = (
            "error",
            failure.reason,
            {"message": failure.message},
        )
    except NoSnapshot:
        st.session_state["console_outcome"] = ("error", "analytics.no_snapshot", {})
    else:
        st.session_state["console_outcome"] = ("rows", sql, result)


def _show() -> None:
    outcome = st.session_state.get("console_outcome")
    if outcome is None:
        return
    if outcome[0] == "error":
        st.error(tr(outcome[1], **{"kind": "", "name": "", "message": "", **outcome[2]}))
        return
    _, sql, result = outcome
    note = "analytics.result_truncated" if result.truncated else "analytics.result_rows"
    st.caption(tr(note, rows=len(result.frame), ms=f"{result.milliseconds:.0f}"))
    st.dataframe(result.frame, hide_index=True)
    figure = quick_chart(result.frame)
    if figure is not None:
        st.plotly_chart(figure, key="console_chart")
    with session_scope() as db:
        locked = lockdown_state(db) is not None
    if locked:
        st.caption(tr("common.lockdown"))
    elif actor.can(Privilege.EXPORT_DATA):
        st.download_button(
            tr("analytics.download_csv"),
            deferred(actor, export_query, sql=sql, fmt="csv"),
            file_name="query.csv",
            icon=":material/download:",
            key="console_download",
        )


def render() -> None:
    st.title(tr("analytics.workspace_title"))
    info = snapshot_status()
    if info is None:
        st.info(tr("analytics.no_snapshot"))
        return
    hours = info.age().total_seconds() / 3600
    st.caption(
        tr("analytics.snapshot_age", built=when(to_local(info.built_at)), hours=f"{hours:.1f}")
    )
    st.caption(tr("analytics.tables", tables=", ".join(sorted(info.rows))))
    _saved()
    st.session_state.setdefault("console_sql", EXAMPLE)
    sql = st.text_area(tr("analytics.sql"), key="console_sql", height=160)
    st.caption(tr("analytics.console_rules"))
    if st.button(
        tr("analytics.run"), type="primary", icon=":material/play_arrow:", key="console_run"
    ):
        _run(sql)
    _show()
    _save(sql)


run_safely(render)
