"""The doctor's encounter page through AppTest: start, diagnose by search, prescribe, warn."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest
from test_pages import _signed_in_page

from cims.base import utcnow
from cims.patients.models import Patient
from cims.records.models import Allergy, Encounter, Prescription

PAGE = "pages/encounter.py"


@pytest.fixture(scope="module")
def seeded_url(seeded_app_database: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """A small seeded demo hospital that the app under test is pointed at."""
    with seeded_app_database("encounter_page", patients=120, seed=11) as url:
        yield url


def _patient_without_open_encounter(url: str, *, penicillin: bool) -> int:
    """A demo patient with no open encounter, optionally given a penicillin allergy."""
    engine = create_engine(url)
    with Session(engine) as db:
        busy = select(Encounter.patient_id).where(Encounter.status == "open")
        allergic = select(Allergy.patient_id)
        patient_id = db.scalars(
            select(Patient.id)
            .where(Patient.id.not_in(busy), Patient.id.not_in(allergic))
            .order_by(Patient.id.desc())
        ).first()
        assert patient_id is not None
        if penicillin:
            db.add(
                Allergy(
                    patient_id=patient_id, substance="青霉素 / Penicillin",
                    substance_code="N0000005828", severity="severe", noted_at=utcnow(),
                )
            )  # fmt: skip
        db.commit()
    engine.dispose()
    return patient_id


def _open_for(url: str, patient_id: int) -> AppTest:
    at = _signed_in_page(url, "doctor", PAGE)
    at.session_state["patient_id"] = patient_id
    return at.run()


def _button(at: AppTest, label: str) -> AppTest:
    [button] = [b for b in at.button if b.label == label]
    return button.click().run()


def _start(at: AppTest) -> AppTest:
    assert not at.exception, at.exception
    assert at.title[0].value == "Encounter"
    at.text_input(key="enc_complaint").input("发热咳嗽 3 天")
    at = _button(at, "Start encounter")
    assert not at.exception, at.exception
    assert "Encounter started." in [s.value for s in at.success]
    return at


def test_doctor_starts_an_encounter_and_codes_a_diagnosis_found_by_search(
    seeded_url: str,
) -> None:
    patient_id = _patient_without_open_encounter(seeded_url, penicillin=False)
    at = _start(_open_for(seeded_url, patient_id))
    tabs = [t.label for t in at.tabs]
    assert tabs == ["Diagnoses", "Prescriptions", "Orders & results", "Plan & follow-ups",
                    "Close encounter"]  # fmt: skip
    at.text_input(key="dx_query").input("essential hypertension").run()
    assert "I10" in at.selectbox(key="dx_code").options[0]
    at.selectbox(key="dx_code").set_value("I10").run()
    at = at.button(key="dx_add").click().run()
    assert not at.exception, at.exception
    assert "Diagnosis added." in [s.value for s in at.success]
    assert "I10" in list(at.dataframe[0].value["Code"])
    # The next diagnosis is offered as secondary; a second primary is refused with one
    # translated message.
    at.text_input(key="dx_query").input("zqgxc").run()  # pinyin initials of 支气管哮喘
    assert at.selectbox(key="dx_code").value == "J45.9"
    assert at.radio(key="dx_rank_1").value == "secondary"
    at.radio(key="dx_rank_1").set_value("primary").run()
    at = at.button(key="dx_add").click().run()
    assert [e.value for e in at.error] == [
        "This encounter already has a primary diagnosis; add this one as secondary or void "
        "the primary first."
    ]
    at.radio(key="dx_rank_1").set_value("secondary").run()
    at = at.button(key="dx_add").click().run()
    assert list(at.dataframe[0].value["Code"]) == ["I10", "J45.9"]
    # Closing with a disposition ends the encounter; the start form is offered again.
    at.selectbox(key="close_disposition").set_value("home").run()
    at = at.button(key="close_go").click().run()
    assert "Encounter closed." in [s.value for s in at.success]
    assert not at.tabs


def test_prescribing_for_a_penicillin_allergy_warns_and_needs_a_reason(seeded_url: str) -> None:
    patient_id = _patient_without_open_encounter(seeded_url, penicillin=True)
    at = _start(_open_for(seeded_url, patient_id))
    assert any("Penicillin" in m.value for m in at.markdown)
    at.selectbox(key="rx_drug").set_value("AMOX").run()
    assert at.number_input(key="rx_dose_AMOX").value == 500.0  # the usual dose, prefilled
    at = _button(at, "Prescribe")
    assert not at.exception, at.exception
    [warning] = at.warning
    assert "Amoxicillin" in warning.value and "Penicillin" in warning.value
    engine = create_engine(seeded_url)
    with Session(engine) as db:
        saved = db.scalars(select(Prescription).where(Prescription.patient_id == patient_id))
        assert list(saved) == []
    at.text_input(key="rx_override_AMOX").input("skin test negative last year")
    at = _button(at, "Prescribe")
    assert not at.exception, at.exception
    assert "Prescription saved." in [s.value for s in at.success]
    assert not at.warning
    with Session(engine) as db:
        [rx] = db.scalars(select(Prescription).where(Prescription.patient_id == patient_id))
        assert rx.drug_code == "AMOX"
        assert rx.allergy_override_reason == "skin test negative last year"
    engine.dispose()


def test_other_roles_are_refused(seeded_url: str) -> None:
    at = _signed_in_page(seeded_url, "nurse", PAGE)
    assert "Your role is not allowed to do this." in [e.value for e in at.error]
