"""Patient portal: my own record — allergies, conditions, medicines, results and visits."""

import streamlit as st

from analytics.figures import lab_sparkline
from cims.clock import local_today, to_local
from cims.db import session_scope
from cims.records.narrative import localise_name
from cims.records.summary import my_summary
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.format import frequency_name, localised, plain, when
from ui.i18n import language, tr

actor = page_guard(Privilege.PORTAL_SELF)
lang = language()
with session_scope() as db:
    record = my_summary(session=db, actor=actor, today=local_today())

st.title(tr("portal_record.title"))
st.caption(tr("portal_record.help"))
left, right = st.columns(2)
allergies = [localise_name(a.substance, lang) for a in record.allergies]
problems = [localise_name(p.description, lang) for p in record.problems]
left.markdown(f"**{tr('summary.allergies')}:** {'; '.join(allergies) or tr('summary.none')}")
right.markdown(f"**{tr('summary.problems')}:** {'; '.join(problems) or tr('summary.none')}")

st.subheader(tr("portal_record.medicines"))
if record.medications:
    st.dataframe(
        [
            {
                tr("summary.col_drug"): localise_name(m.drug_name, lang),
                tr("summary.col_dose"): f"{m.dose.normalize():f} {m.dose_unit}",
                tr("summary.col_frequency"): frequency_name(m.frequency),
                tr("summary.col_prescribed"): when(to_local(m.prescribed_at)),
            }
            for m in record.medications
        ],
        hide_index=True,
    )
else:
    st.info(tr("summary.no_medications"))

st.subheader(tr("portal_record.results"))
if not record.labs:
    st.info(tr("summary.no_labs"))
columns = st.columns(2)
for index, series in enumerate(record.labs):
    where, latest = columns[index % 2], series.latest
    flag = f" · {tr('summary.abnormal', flag=latest.flag)}" if series.abnormal else ""
    where.markdown(
        f"**{localise_name(series.name, lang)}** {latest.value:g} {series.unit or ''} "
        f"({latest.observed_at.date().isoformat()}){flag}"
    )
    where.plotly_chart(lab_sparkline(series), key=f"my_lab_{series.code}")

st.subheader(tr("portal_record.visits"))
if record.encounters:
    st.dataframe(
        [
            {
                tr("portal_record.col_when"): when(to_local(e.started_at)),
                tr("portal_record.col_kind"): tr(f"print.type_{e.encounter_type}"),
                tr("portal_record.col_department"): localised(e.department_zh, e.department_en),
                tr("portal_record.col_diagnosis"): localise_name(e.diagnosis or "", lang),
            }
            for e in sorted(record.encounters, key=lambda e: e.started_at, reverse=True)[:50]
        ],
        hide_index=True,
    )
else:
    st.info(tr("summary.no_encounters"))
open_items = [f for f in record.follow_ups if f.open]
if open_items:
    st.subheader(tr("summary.follow_ups"))
    for item in open_items:
        st.markdown(f"- {item.due_date.isoformat()} · {plain(item.description)}")
