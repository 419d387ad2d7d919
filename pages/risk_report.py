"""Risk report (data staff): a ranked list of a cohort with reasons; CSV, Excel and PDF."""

import pandas as pd
import streamlit as st

from cims.db import session_scope
from cims.security.rbac import Privilege
from models.export import FORMATS, export_report
from models.features import COHORTS
from models.predict import RiskReport, risk_report
from models.registry import ModelError
from ui.auth import page_guard
from ui.errors import run_safely
from ui.format import when
from ui.i18n import language, tr

actor = page_guard(Privilege.RUN_RISK_REPORTS)
lang = language()
st.title(tr("models.report_title"))
MIME = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}


def _table(report: RiskReport) -> None:
    rows = [
        {
            tr("models.col.rank"): row.rank,
            tr("models.col.mrn"): row.mrn,
            tr("models.col.name"): row.name,
            tr("models.col.when"): when(row.index_time),
            tr("models.col.score"): f"{row.score:.1%}",
            tr("models.col.reasons"): "; ".join(
                f.zh if lang == "zh" else f.en for f in row.factors
            ),
        }
        for row in report.rows
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="risk_report_table")


def _export(report: RiskReport) -> None:
    formats = {f: tr(f"models.format.{f}") for f in FORMATS}
    cols = st.columns(2)
    fmt = cols[0].selectbox(tr("models.format"), list(formats), format_func=formats.__getitem__)
    if cols[1].button(tr("models.prepare_export"), icon=":material/download:"):
        with session_scope() as db:
            data = export_report(session=db, actor=actor, report=report, fmt=fmt, language=lang)
        st.session_state["risk_export"] = (fmt, data)
    prepared = st.session_state.get("risk_export")
    if prepared:
        st.download_button(
            tr("models.download"),
            prepared[1],
            file_name=f"risk-{report.cohort}.{prepared[0]}",
            mime=MIME[prepared[0]],
            icon=":material/file_download:",
        )


def render() -> None:
    cohorts = {
        c: f"{tr(f'models.name.{m}')} · {tr(f'models.cohort.{c}')}" for c, m in COHORTS.items()
    }
    cohort = st.selectbox(tr("models.cohort"), list(cohorts), format_func=cohorts.__getitem__)
    if st.button(tr("models.run_report"), icon=":material/format_list_numbered:"):
        try:
            with session_scope() as db:
                st.session_state["risk_report"] = risk_report(
                    session=db, actor=actor, cohort=cohort
                )
            st.session_state.pop("risk_export", None)
        except ModelError as problem:
            st.error(tr(problem.key))
            return
    report = st.session_state.get("risk_report")
    if report is None or report.cohort != cohort:
        st.info(tr("models.report_hint"))
        return
    st.caption(
        tr(
            "models.report_subtitle",
            model=tr(f"models.name.{report.model_name}"),
            version=report.version,
            cohort=tr(f"models.cohort.{report.cohort}"),
            when=when(report.generated_at),
        )
    )
    if not report.rows:
        st.info(tr("models.report_empty"))
        return
    _table(report)
    _export(report)


run_safely(render)
