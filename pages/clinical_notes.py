"""Clinical notes: SOAP drafts signed by their author, addenda, attachments and printouts."""

from collections.abc import Callable
from typing import Any

import streamlit as st

from cims.appointments.service import list_my_clinic
from cims.clock import local_today, to_local
from cims.db import session_scope
from cims.printables import service as printing
from cims.records import attachments as files
from cims.records import notes
from cims.records.service import list_my_inpatients
from cims.security.rbac import AccessDenied, Privilege
from ui.auth import page_guard
from ui.downloads import deferred
from ui.errors import run_safely
from ui.format import plain, when
from ui.i18n import language, tr

FLASH = "clinical_notes_flash"
PDF = "application/pdf"
actor = page_guard(Privilege.VIEW_CLINICAL)
lang = language()
writer = actor.can(Privilege.WRITE_CLINICAL)
st.title(tr("clinical_notes.title"))
TYPES = {kind: tr(f"clinical_notes.type_{kind}") for kind in notes.NOTE_TYPES}


def chosen_patient() -> int | None:
    """From the link (?patient=), the session, or today's clinic and the ward."""
    given = st.query_params.get("patient") or st.session_state.get("patient_id")
    if given is not None and str(given).isdigit():
        return int(given)
    with session_scope() as db:
        clinic = list_my_clinic(session=db, actor=actor, day=local_today())
        ward = list_my_inpatients(session=db, actor=actor, today=local_today())
    labels = {r.patient_id: f"{r.patient_name} · {r.mrn}" for r in clinic}
    labels |= {r.patient_id: f"{r.patient_name} · {r.mrn} · {r.bed}" for r in ward}
    if not labels:
        st.info(tr("clinical_notes.no_patient"))
        return None
    pick: int = st.selectbox(
        tr("clinical_notes.choose_patient"), list(labels), format_func=labels.__getitem__
    )
    return pick


def act(work: Callable[[Any], object], done: str) -> None:
    """One user action in one transaction; refusals become translated messages."""
    try:
        with session_scope() as db:
            work(db)
    except (notes.InvalidNote, files.InvalidAttachment) as refusal:
        for problem in refusal.problems:
            st.error(tr(problem))
        return
    st.session_state[FLASH] = done
    st.rerun()


def save(patient_id: int, fields: dict[str, Any], draft: notes.NoteView | None, sign: bool) -> None:
    """Write or update the draft, and sign it in the same transaction when asked."""

    def work(db: Any) -> None:
        if draft is None:
            note = notes.write_note(session=db, actor=actor, patient_id=patient_id, **fields)
        else:
            note = notes.update_draft(session=db, actor=actor, note_id=draft.id, **fields)
        if sign:
            notes.sign_note(session=db, actor=actor, note_id=note.id)

    act(work, "clinical_notes.signed" if sign else "clinical_notes.saved")


def soap_form(patient_id: int, visits: dict[int | None, str], draft: notes.NoteView | None) -> None:
    """Title (type and visit for a new note) and the four SOAP sections; save or sign."""
    key = f"draft_{draft.id}" if draft else "new"
    soap = draft.soap if draft and draft.soap else notes.Soap()
    with st.form(f"note_{key}"):
        label = tr("clinical_notes.note_title")
        fields: dict[str, Any] = {
            "title": st.text_input(label, draft.title if draft else "", key=f"{key}_title")
        }
        if draft is None:
            left, right = st.columns(2)
            fields["note_type"] = left.selectbox(
                tr("clinical_notes.note_type"), list(TYPES), format_func=TYPES.__getitem__
            )
            fields["encounter_id"] = right.selectbox(
                tr("clinical_notes.visit"), list(visits), format_func=visits.__getitem__
            )
        for name in notes.SOAP_SECTIONS:
            label = tr(f"clinical_notes.{name}")
            fields[name] = st.text_area(label, getattr(soap, name), key=f"{key}_{name}")
        left, right = st.columns(2)
        saved = left.form_submit_button(tr("clinical_notes.save_draft"), icon=":material/save:")
        signed = right.form_submit_button(tr("clinical_notes.sign"), type="primary")
    if saved or signed:
        save(patient_id, fields, draft, signed)


def show_note(patient_id: int, note: notes.NoteView, visits: dict[int | None, str]) -> None:
    """A signed note read-only with its addenda underneath; the author's draft editable."""
    status = tr(f"clinical_notes.status_{note.status}")
    kind = TYPES.get(note.note_type, note.note_type)
    with st.container(border=True):
        written = when(to_local(note.written_at))
        st.markdown(
            f"**{plain(note.title)}** · {kind} · {written} · {note.author_name} · `{status}`"
        )
        if not note.signed:
            soap_form(patient_id, visits, note)
            return
        for name in notes.SOAP_SECTIONS if note.soap else ():
            if getattr(note.soap, name):
                st.markdown(
                    f"**{tr(f'clinical_notes.{name}')}**  \n{plain(getattr(note.soap, name))}"
                )
        if note.soap is None:
            st.markdown(plain(note.text))
        for extra in note.addenda:
            at = when(to_local(extra.written_at))
            head = tr("clinical_notes.addendum_by", author=extra.author_name, at=at)
            st.info(f"{head}  \n{plain(extra.text)}", icon=":material/edit_note:")
        if writer:
            with st.form(f"addendum_{note.id}"):
                text = st.text_area(tr("clinical_notes.addendum"), key=f"addendum_text_{note.id}")
                if st.form_submit_button(tr("clinical_notes.add_addendum")):
                    act(
                        lambda db: notes.add_addendum(
                            session=db, actor=actor, note_id=note.id, text=text
                        ),
                        "clinical_notes.addendum_added",
                    )


def attachments_tab(patient_id: int) -> None:
    """Upload within the limits; list with downloads decrypted on click."""
    if actor.can(Privilege.RECORD_VITALS):
        with st.form("upload", clear_on_submit=True):
            upload = st.file_uploader(tr("clinical_notes.upload"), key="attachment_file")
            pressed = st.form_submit_button(tr("clinical_notes.upload_submit"))
        if pressed and upload is not None:
            data = {
                "filename": upload.name,
                "content_type": upload.type or "",
                "data": upload.getvalue(),
            }
            act(
                lambda db: files.upload_attachment(
                    session=db, actor=actor, patient_id=patient_id, **data
                ),
                "clinical_notes.uploaded",
            )
    with session_scope() as db:
        rows = files.list_attachments(session=db, actor=actor, patient_id=patient_id)
    for row in rows:
        st.download_button(
            f"{row.filename} · {row.size_bytes:,} B · {when(to_local(row.uploaded_at))}",
            deferred(actor, files.download_attachment, attachment_id=row.id),
            file_name=row.filename,
            mime=row.content_type,
            icon=":material/download:",
            key=f"attachment_{row.id}",
            on_click="ignore",
        )
    if not rows:
        st.caption(tr("clinical_notes.no_attachments"))


def print_tab(patient_id: int, visits: dict[int | None, str]) -> None:
    """Wristband, prescription and visit summary as PDF in the UI language."""
    buttons: list[tuple[str, Callable[..., bytes], dict[str, Any]]] = [
        ("wristband", printing.print_wristband, {"patient_id": patient_id})
    ]
    chosen = [v for v in visits if v is not None]
    if chosen:
        visit = st.selectbox(
            tr("clinical_notes.print_visit"), chosen, format_func=visits.__getitem__
        )
        buttons += [
            ("prescription", printing.print_prescription, {"encounter_id": visit}),
            ("visit_summary", printing.print_visit_summary, {"encounter_id": visit}),
        ]
    for name, function, kwargs in buttons:
        st.download_button(
            tr(f"clinical_notes.print_{name}"),
            deferred(actor, function, language=lang, **kwargs),
            file_name=f"{name}.pdf",
            mime=PDF,
            icon=":material/print:",
            on_click="ignore",
        )


def render() -> None:
    patient_id = chosen_patient()
    if patient_id is None:
        return
    try:
        with session_scope() as db:
            listed = notes.list_notes(session=db, actor=actor, patient_id=patient_id)
            options = printing.list_visits(session=db, actor=actor, patient_id=patient_id)
    except AccessDenied:
        st.error(tr("clinical_notes.outside_care"))
        return
    visits: dict[int | None, str] = {None: tr("clinical_notes.no_visit")}
    for v in options:
        department = v.department_zh if lang == "zh" else v.department_en
        kind = tr(f"print.type_{v.encounter_type}")
        visits[v.id] = f"{when(v.started_at)} · {kind} · {department}"
    if flash := st.session_state.pop(FLASH, None):
        st.success(tr(flash))
    tabs = ("tab_notes", "tab_attachments", "tab_print")
    notes_tab, files_tab, printing_tab = st.tabs([tr(f"clinical_notes.{t}") for t in tabs])
    with notes_tab:
        if writer:
            with st.expander(tr("clinical_notes.new_note"), expanded=not listed):
                soap_form(patient_id, visits, None)
        for note in listed:
            show_note(patient_id, note, visits)
        if not listed:
            st.info(tr("clinical_notes.no_notes"))
    with files_tab:
        attachments_tab(patient_id)
    with printing_tab:
        print_tab(patient_id, visits)


run_safely(render)
