"""The import page's lab-results section: upload HL7 ORU^R01 files, fetch unmatched lists."""

from __future__ import annotations

import streamlit as st

from cims.db import session_scope
from cims.interop.hl7_oru import Hl7Report, import_hl7
from cims.interop.hl7_runs import export_hl7_unmatched, list_hl7_runs
from cims.security.rbac import Actor
from ui.format import when
from ui.i18n import tr


def _show(report: Hl7Report) -> None:
    counts = {
        "name": report.label,
        "messages": len(report.outcomes),
        "accepted": report.accepted,
        "added": report.added,
        "refused": len(report.refused),
    }
    (st.warning if report.refused else st.success)(tr("import.hl7_done", **counts))
    for outcome in report.refused:
        st.caption(
            tr(
                "import.hl7_refused",
                index=outcome.index,
                control_id=outcome.control_id or "?",
                code=outcome.ack_code,
                reason=outcome.reason or "",
            )
        )
    st.download_button(
        tr("import.hl7_download_acks"),
        report.acks.encode("utf-8"),
        file_name=f"{report.label}.ack",
        mime="application/hl7-v2",
        icon=":material/download:",
        key=f"hl7_acks_{report.run_id}",
    )


def _upload(actor: Actor) -> None:
    files = st.file_uploader(tr("import.hl7_files"), accept_multiple_files=True, key="import_hl7")
    if not files or not st.button(tr("import.start"), key="import_hl7_go"):
        return
    for file in files:
        with session_scope() as db:  # one file, one transaction (each message all or nothing)
            report = import_hl7(session=db, actor=actor, data=file.getvalue(), label=file.name)
        _show(report)


def _unmatched(actor: Actor) -> None:
    with session_scope() as db:
        runs = [run for run in list_hl7_runs(session=db, actor=actor) if run.refused]
    if not runs:
        st.caption(tr("import.hl7_no_unmatched"))
        return
    labels = {
        run.id: tr(
            "import.hl7_run_label",
            started=when(run.started_at),
            label=run.label,
            refused=run.refused,
        )
        for run in runs
    }
    run_id = st.selectbox(
        tr("import.hl7_runs"), list(labels), format_func=labels.__getitem__, key="import_hl7_run"
    )
    if run_id is None or not st.button(tr("import.hl7_prepare"), key="import_hl7_prepare"):
        return
    with session_scope() as db:  # audited: the list names MRNs
        text = export_hl7_unmatched(session=db, actor=actor, run_id=run_id)
    st.download_button(
        tr("import.hl7_download_unmatched"),
        text.encode("utf-8"),
        file_name=f"hl7-run-{run_id}-unmatched.csv",
        mime="text/csv",
        icon=":material/download:",
        key="import_hl7_unmatched_csv",
    )


def hl7_section(actor: Actor) -> None:
    """Upload lab-result files and download the messages of recent runs that were refused."""
    st.subheader(tr("import.hl7_header"))
    _upload(actor)
    _unmatched(actor)
