"""Prescriptions tab: the allergy banner, the drug picker with its usual dose, the conflict
warning that asks for an override reason, and stopping a prescription."""

from __future__ import annotations

from decimal import Decimal

import streamlit as st

from cims.db import session_scope
from cims.records.drugs import FORMULARY, FORMULARY_BY_CODE, FREQUENCIES, ROUTES
from cims.records.narrative import localise_name
from cims.records.orders import AllergyConflict, prescribe, stop_prescription
from cims.security.rbac import Actor
from ui.encounter_tabs.common import act, current_view, labels, void_control
from ui.format import frequency_name, route_name
from ui.i18n import language, tr

CONFLICT = "rx_conflict"  # (drug code, allergy names) awaiting an override reason


def render(actor: Actor, patient_id: int, encounter_id: int) -> None:
    """The encounter's prescriptions and the prescribing form."""
    view = current_view(actor, encounter_id)
    lang = language()
    allergies = [localise_name(a.substance, lang) for a in view.allergies]
    st.markdown(
        f"**{tr('encounter.allergies')}:** "
        + (f":red[{'; '.join(allergies)}]" if allergies else tr("encounter.no_allergies"))
    )
    status = labels("encounter.status_", ("active", "completed", "stopped", "cancelled"))
    if view.prescriptions:
        st.dataframe(
            [
                {
                    tr("encounter.col_drug"): localise_name(p.drug_name, lang),
                    tr("encounter.col_dose"): f"{p.dose.normalize():f} {p.dose_unit}",
                    tr("encounter.route"): route_name(p.route),
                    tr("encounter.frequency"): frequency_name(p.frequency),
                    tr("encounter.duration"): p.duration_days,
                    tr("encounter.col_status"): status[p.status],
                    tr("encounter.col_override"): p.allergy_override_reason or "",
                }
                for p in view.prescriptions
            ],
            hide_index=True,
        )
    else:
        st.info(tr("encounter.no_prescriptions"))
    if view.encounter.status != "open":
        return
    _form(actor, encounter_id)

    def stop(prescription_id: int, reason: str) -> None:
        with session_scope() as db:
            stop_prescription(
                session=db, actor=actor, prescription_id=prescription_id, reason=reason
            )

    active = {
        p.id: localise_name(p.drug_name, lang) for p in view.prescriptions if p.status == "active"
    }
    void_control("stop", active, "stop", stop)


def _form(actor: Actor, encounter_id: int) -> None:
    lang = language()
    names = {d.code: localise_name(d.name, lang) for d in FORMULARY}
    code = st.selectbox(
        tr("encounter.drug"), list(names), format_func=names.__getitem__, key="rx_drug"
    )
    drug = FORMULARY_BY_CODE[code]
    pending: tuple[str, list[str]] | None = st.session_state.get(CONFLICT)
    conflict = pending is not None and pending[0] == code
    if pending is not None and conflict:
        st.warning(
            tr("encounter.allergy_conflict", drug=names[code], allergies="; ".join(pending[1]))
        )
    route_names = labels("encounter.route_", ROUTES)
    frequency_names = labels("encounter.frequency_", FREQUENCIES)
    with st.form(f"rx_form_{code}"):
        a, b, c = st.columns(3)
        dose = a.number_input(tr("encounter.dose"), min_value=0.0, value=float(drug.dose),
                              key=f"rx_dose_{code}")  # fmt: skip
        unit = b.text_input(tr("encounter.dose_unit"), value=drug.dose_unit, key=f"rx_unit_{code}")
        route = c.selectbox(
            tr("encounter.route"), ROUTES, index=ROUTES.index(drug.route),
            format_func=route_names.__getitem__, key=f"rx_route_{code}",
        )  # fmt: skip
        frequency = a.selectbox(
            tr("encounter.frequency"), FREQUENCIES, index=FREQUENCIES.index(drug.frequency),
            format_func=frequency_names.__getitem__, key=f"rx_freq_{code}",
        )  # fmt: skip
        days = b.number_input(tr("encounter.duration"), min_value=1, max_value=365,
                              value=drug.duration_days, key=f"rx_days_{code}")  # fmt: skip
        quantity = c.number_input(tr("encounter.quantity"), min_value=0.0,
                                  value=float(drug.quantity), key=f"rx_qty_{code}")  # fmt: skip
        override = (
            st.text_input(tr("encounter.override_reason"), key=f"rx_override_{code}")
            if conflict
            else ""
        )
        submitted = st.form_submit_button(tr("encounter.prescribe"), type="primary")
    if not submitted:
        return

    def save() -> None:
        with session_scope() as db:
            prescribe(
                session=db, actor=actor, encounter_id=encounter_id, drug_code=drug.code,
                drug_name=drug.name, dose=Decimal(str(dose)), dose_unit=unit, route=route,
                frequency=frequency, duration_days=int(days), quantity=Decimal(str(quantity)),
                override_reason=override or None,
            )  # fmt: skip

    st.session_state.pop(CONFLICT, None)
    try:
        act(save, "encounter.prescribed")
    except AllergyConflict as warning:
        names_found = [localise_name(a.substance, lang) for a in warning.allergies]
        st.session_state[CONFLICT] = (code, names_found)
        st.rerun()
