"""Data import and export: Synthea CSV folders and FHIR bundles in, spreadsheets out."""

from pathlib import Path

import streamlit as st

from cims.db import session_scope
from cims.interop.fhir_import import import_fhir_bundle
from cims.interop.spreadsheets import export_patient_list, export_visit_list
from cims.interop.synthea import ImportReport, InvalidImport, import_synthea, list_import_runs
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.errors import run_safely
from ui.format import when
from ui.hl7_section import hl7_section
from ui.i18n import language, tr

actor = page_guard(Privilege.IMPORT_DATA)


def _show_report(report: ImportReport) -> None:
    rejected = sum(report.rejected_counts.values())
    st.success(
        tr(
            "import.done",
            read=f"{report.rows_read:,}",
            added=f"{report.rows_added:,}",
            rejected=f"{rejected:,}",
            seconds=f"{report.seconds:.1f}",
        )
    )
    added = [{tr("import.col_table"): k, tr("import.col_rows"): v} for k, v in report.added.items()]
    st.caption(tr("import.added_table"))
    st.dataframe(added, hide_index=True, use_container_width=True)
    if report.unknown.get("files"):
        st.warning(tr("import.unknown_files", names=", ".join(report.unknown["files"])))
    if report.unknown.get("unmapped_files"):
        st.info(tr("import.unmapped_files", names=", ".join(report.unknown["unmapped_files"])))
    for name, columns in report.unknown.get("columns", {}).items():
        st.warning(tr("import.unknown_columns", file=name, names=", ".join(columns)))
    if rejected:
        st.caption(tr("import.rejected_table"))
        columns = (tr("import.col_file"), tr("import.col_line"), tr("import.col_reason"))
        rows = [dict(zip(columns, row, strict=True)) for row in report.rejected_rows()]
        st.dataframe(rows, hide_index=True, use_container_width=True)
        st.download_button(
            tr("import.download_rejected"),
            report.rejected_csv().encode("utf-8"),
            file_name=f"import-{report.run_id}-rejected.csv",
            mime="text/csv",
            icon=":material/download:",
        )


def _synthea() -> None:
    st.subheader(tr("import.synthea_header"))
    folder = st.text_input(tr("import.folder"), key="import_folder", help=tr("import.folder_help"))
    if not st.button(tr("import.start"), type="primary", icon=":material/upload:", key="import_go"):
        return
    bar = st.progress(0.0, text=tr("import.running", step=""))
    try:
        with session_scope() as db:
            report = import_synthea(
                session=db,
                actor=actor,
                folder=Path(folder.strip()),
                progress=lambda f, step: bar.progress(f, text=tr("import.running", step=step)),
            )
    except InvalidImport as refusal:
        for problem in refusal.problems:
            st.error(tr(problem))
        return
    _show_report(report)


def _fhir() -> None:
    st.subheader(tr("import.fhir_header"))
    files = st.file_uploader(
        tr("import.fhir_files"), type=["json"], accept_multiple_files=True, key="import_fhir"
    )
    if not files or not st.button(tr("import.start"), key="import_fhir_go"):
        return
    try:
        with session_scope() as db:
            reports = [
                (
                    f.name,
                    import_fhir_bundle(
                        session=db, actor=actor, bundle=f.getvalue().decode(), label=f.name
                    ),
                )
                for f in files
            ]
    except InvalidImport as refusal:
        for problem in refusal.problems:
            st.error(tr(problem))
        return
    for name, report in reports:
        rejected = sum(report.rejected_counts.values())
        st.success(
            tr("import.fhir_done", name=name, added=sum(report.added.values()), rejected=rejected)
        )


def _exports() -> None:
    st.subheader(tr("import.export_header"))
    lang = language()
    for fmt in ("xlsx", "csv"):
        left, right = st.columns(2)
        with session_scope() as db:
            patients = export_patient_list(session=db, actor=actor, fmt=fmt, language=lang)
        left.download_button(
            tr("import.export_patients", fmt=fmt),
            patients,
            file_name=f"patients.{fmt}",
            icon=":material/table_view:",
            key=f"export_patients_{fmt}",
        )
        with session_scope() as db:
            visits = export_visit_list(session=db, actor=actor, fmt=fmt, language=lang)
        right.download_button(
            tr("import.export_visits", fmt=fmt),
            visits,
            file_name=f"visits.{fmt}",
            icon=":material/table_view:",
            key=f"export_visits_{fmt}",
        )


def _history() -> None:
    st.subheader(tr("import.recent_runs"))
    with session_scope() as db:
        runs = list_import_runs(session=db, actor=actor)
    if not runs:
        st.info(tr("import.none"))
        return
    rows = [
        {
            tr("import.col_started"): when(run.started_at),
            tr("import.col_source"): f"{run.source_system}: {run.source_label}",
            tr("import.col_status"): run.status,
            tr("import.added_table"): run.rows_added,
            tr("import.rejected_table"): run.rejected,
        }
        for run in runs
    ]
    st.dataframe(rows, hide_index=True, use_container_width=True)


def render() -> None:
    """Draw the page."""
    st.title(tr("import.title"))
    _synthea()
    _fhir()
    hl7_section(actor)
    exports = actor.can(Privilege.EXPORT_DATA)
    if exports and st.toggle(tr("import.export_header"), key="import_show_exports"):
        _exports()
    _history()


run_safely(render)
