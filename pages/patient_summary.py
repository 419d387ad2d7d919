"""Patient summary: the doctor's one-page history before a visit."""

import streamlit as st

from analytics.figures import encounter_timeline, lab_sparkline
from cims.appointments.service import list_my_clinic
from cims.clock import local_today, to_local
from cims.db import session_scope
from cims.records.narrative import gap_text, localise_name, narrative
from cims.records.summary import PatientSummary, build_summary
from cims.security.care import open_break_glass
from cims.security.rbac import AccessDenied, Privilege
from cims.text_limits import TOO_LONG_KEY
from ui.auth import page_guard
from ui.format import frequency_name, hhmm, money, plain, route_name, when
from ui.i18n import language, tr

actor = page_guard(Privilege.VIEW_CLINICAL)
lang = language()
today = local_today()
st.title(tr("summary.title"))


def _chosen_patient() -> int | None:
    """From the link (?patient=), the session, or a pick from today's clinic."""
    given = st.query_params.get("patient") or st.session_state.get("patient_id")
    if given is not None and str(given).isdigit():
        return int(given)
    with session_scope() as db:
        clinic = list_my_clinic(session=db, actor=actor, day=today)
    if not clinic:
        st.info(tr("summary.no_patient"))
        return None
    labels = {
        row.patient_id: f"{hhmm(row.scheduled_at)} · {row.patient_name} · {row.mrn}"
        for row in clinic
    }
    choice: int = st.selectbox(
        tr("summary.choose_patient"), list(labels), format_func=labels.__getitem__
    )
    return choice


def _offer_break_glass(patient_id: int) -> None:
    """Outside care: explain, and let a clinician with the privilege break the glass."""
    if not actor.can(Privilege.BREAK_GLASS):
        st.error(tr("summary.no_break_glass"))
        return
    st.warning(tr("summary.outside_care"))
    with st.form("break_glass"):
        reason = st.text_input(tr("summary.break_glass_reason"), key="break_glass_reason")
        submitted = st.form_submit_button(tr("summary.break_glass_submit"), type="primary")
    if not submitted:
        return
    try:
        with session_scope() as db:
            open_break_glass(session=db, actor=actor, patient_id=patient_id, reason=reason)
    except ValueError as refusal:
        too_long = str(refusal) == TOO_LONG_KEY
        st.error(tr(TOO_LONG_KEY if too_long else "summary.reason_too_short"))
        return
    st.rerun()


def _banner(summary: PatientSummary) -> None:
    head = summary.header
    if summary.basis == "break_glass":
        st.error(tr("summary.break_glass_banner"))
    age = "?" if head.age is None else head.age
    line = tr(
        "summary.banner",
        name=head.name,
        sex=tr(f"sex.{head.sex}"),
        age=age,
        mrn=head.mrn,
        blood=head.blood_type,
    )
    st.subheader(line + (f" · {tr('summary.deceased')}" if head.deceased else ""))
    left, right = st.columns(2)
    allergies = [localise_name(a.substance, lang) for a in summary.allergies]
    problems = [localise_name(p.description, lang) for p in summary.problems]
    left.markdown(
        f"**{tr('summary.allergies')}:** :red[{'; '.join(allergies) or tr('summary.none')}]"
    )
    right.markdown(f"**{tr('summary.problems')}:** {'; '.join(problems) or tr('summary.none')}")


def _labs(summary: PatientSummary) -> None:
    st.subheader(tr("summary.labs"))
    if not summary.labs:
        st.info(tr("summary.no_labs"))
        return
    columns = st.columns(2)
    for index, series in enumerate(summary.labs):
        where = columns[index % 2]
        latest = series.latest
        flag = f" · :red[{tr('summary.abnormal', flag=latest.flag)}]" if series.abnormal else ""
        where.markdown(
            f"**{localise_name(series.name, lang)}** {latest.value:g} {series.unit or ''} "
            f"({latest.observed_at.date().isoformat()}){flag}"
        )
        where.plotly_chart(lab_sparkline(series), key=f"lab_{series.code}")


def _render(summary: PatientSummary) -> None:
    _banner(summary)
    st.subheader(tr("summary.narrative"))
    for statement in narrative(summary, lang):
        tags = " ".join(f"`{source.tag()}`" for source in statement.sources[:3])
        st.markdown(f"- {plain(statement.text)} :gray[{tags}]")
    st.subheader(tr("summary.medications"))
    if summary.medications:
        rows = [
            {
                tr("summary.col_drug"): localise_name(m.drug_name, lang),
                tr("summary.col_dose"): f"{m.dose.normalize():f} {m.dose_unit}",
                tr("summary.col_route"): route_name(m.route),
                tr("summary.col_frequency"): frequency_name(m.frequency),
                tr("summary.col_prescribed"): when(to_local(m.prescribed_at)),
            }
            for m in summary.medications
        ]
        st.dataframe(rows, hide_index=True)
    else:
        st.info(tr("summary.no_medications"))
    _labs(summary)
    st.subheader(tr("summary.timeline"))
    if summary.encounters:
        st.plotly_chart(encounter_timeline(summary.encounters, lang), key="timeline")
    else:
        st.info(tr("summary.no_encounters"))
    st.subheader(tr("summary.notes"))
    for note in summary.notes:
        marks = [tr("clinical_notes.addendum")] if note.amends_id else []
        marks += [tr("clinical_notes.status_draft")] if note.status == "draft" else []
        tags = "".join(f" · `{mark}`" for mark in marks)
        written = when(to_local(note.written_at))
        st.markdown(f"**{plain(note.title)}**{tags} · {written}  \n{plain(note.first_line)}")
    if not summary.notes:
        st.info(tr("summary.no_notes"))
    st.subheader(tr("summary.follow_ups"))
    for gap in summary.care_gaps:
        st.warning(gap_text(gap, lang))
    open_items = [f for f in summary.follow_ups if f.open]
    for item in open_items:
        st.markdown(f"- {item.due_date.isoformat()} · {plain(item.description)} ({item.status})")
    if not open_items and not summary.care_gaps:
        st.info(tr("summary.no_follow_ups"))
    cols = st.columns(2)
    cols[0].metric(tr("summary.unpaid"), summary.billing.unpaid_count)
    cols[1].metric(tr("summary.balance"), money(summary.billing.balance))
    st.subheader(tr("summary.risks"))
    for risk in summary.risks:
        st.markdown(
            "- "
            + tr(
                "summary.risk_line",
                model=tr(f"models.name.{risk.model_name}"),
                version=risk.version,
                score=f"{risk.score:.0%}",
            )
            + "".join(
                f"\n  - {factor.get(lang, '') if isinstance(factor, dict) else factor}"
                for factor in risk.factors[:5]
            )
        )
    if not summary.risks:
        st.info(tr("summary.no_risk_model"))


patient_id = _chosen_patient()
if patient_id is not None:
    try:
        with session_scope() as db:
            summary = build_summary(session=db, actor=actor, patient_id=patient_id, today=today)
    except AccessDenied:
        _offer_break_glass(patient_id)
    except LookupError:
        st.error(tr("summary.not_found"))
    else:
        _render(summary)
