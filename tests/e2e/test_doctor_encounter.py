"""A doctor reads a clinic patient's summary, then charts the visit: diagnosis and prescription."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, expect
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from cims.records.models import Diagnosis, Encounter, Prescription
from journeys import arrival_today, choose, new_page, open_page, settled, sign_in

COMPLAINT = "Thirsty and tired for two weeks"


def test_doctor_reads_the_summary_and_writes_diagnosis_and_prescription(
    server: str, e2e_db: str, browser: Browser, totp_for: Callable[[str], str], shots: Path
) -> None:
    patient_id, mrn, _ = arrival_today(e2e_db, last=True)
    page = new_page(browser, 1400, 1200)
    sign_in(page, server, "doctor", totp_for)

    open_page(page, server, f"patient_summary?patient={patient_id}")
    expect(page.get_by_role("heading", name=re.compile(f"MRN {mrn}"))).to_be_visible()
    expect(page.get_by_text("Active problems:")).to_be_visible()

    # From the summary to the encounter: the same patient travels in the address.
    open_page(page, server, f"encounter?patient={patient_id}")
    choose(page, "Department", "Endocrinology")
    page.get_by_role("textbox", name="Chief complaint").fill(COMPLAINT)
    page.get_by_role("button", name="Start encounter").click()
    expect(page.get_by_text("Encounter started.")).to_be_visible(timeout=30_000)
    settled(page)
    expect(page.get_by_text(re.compile(f"complaint: {COMPLAINT}"))).to_be_visible()

    search = page.get_by_role("textbox", name=re.compile("^Search ICD-10"))
    search.fill("E11")
    search.press("Enter")
    settled(page)
    choose(page, "Choose a code", re.compile("^E11 Type 2 diabetes mellitus$"))
    page.get_by_role("button", name="Add diagnosis").click()
    expect(page.get_by_text("Diagnosis added.")).to_be_visible(timeout=30_000)
    settled(page)
    expect(
        page.get_by_role("tabpanel", name="Diagnoses").get_by_test_id("stDataFrame")
    ).to_be_visible()
    page.screenshot(path=str(shots / "doctor_diagnosis.png"), full_page=True)

    page.get_by_role("tab", name="Prescriptions").click()
    choose(page, "Drug", re.compile("^Metformin$"))
    page.get_by_role("button", name="Prescribe").click()
    expect(page.get_by_text("Prescription saved.")).to_be_visible(timeout=30_000)
    settled(page)
    page.get_by_role("tab", name="Prescriptions").click()
    grid = page.get_by_role("tabpanel", name="Prescriptions").get_by_test_id("stDataFrame")
    expect(grid).to_be_visible()
    page.screenshot(path=str(shots / "doctor_encounter.png"), full_page=True)
    page.context.close()

    engine = create_engine(e2e_db)
    with Session(engine) as db:
        encounter = db.scalar(
            select(Encounter).where(
                Encounter.patient_id == patient_id, Encounter.chief_complaint == COMPLAINT
            )
        )
        assert encounter is not None
        codes = db.scalars(select(Diagnosis.code).where(Diagnosis.encounter_id == encounter.id))
        drugs = db.scalars(
            select(Prescription.drug_code).where(Prescription.encounter_id == encounter.id)
        )
        assert list(codes) == ["E11"]
        assert list(drugs) == ["METF"]
    engine.dispose()
