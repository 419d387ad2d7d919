"""How fast the doctor's patient summary is built for a patient with a long record.

On a fresh database (``cims_bench_summary`` on the configured server) one patient gets
500 events (encounters, labs, notes, prescriptions) among other patients' rows; then
``build_summary`` runs repeatedly in fresh sessions (each rolled back).

- summary_ms / summary_p95_ms: median and 95th percentile time of one summary; goal <= 300.
- overhead_vs_single_query: the summary's median against one plain query fetching the same
  patient's encounter rows (the least any history page must do).

Last stdout line is one JSON object.

    .venv/bin/python bench/summary_page.py [--runs N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import fresh_database
from sqlalchemy import Engine, create_engine, insert, select, text
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.clock import local_today
from cims.org.models import Department
from cims.patients.models import Patient
from cims.patients.mrn import make_mrn
from cims.records.models import (
    Allergy,
    ClinicalNote,
    Encounter,
    Observation,
    Prescription,
    Problem,
)
from cims.records.summary import build_summary
from cims.security.crypto import load_cipher
from cims.security.rbac import Actor, Privilege

DATABASE = "cims_bench_summary"
EVENTS = {"encounters": 150, "observations": 200, "notes": 100, "prescriptions": 50}
OTHER_PATIENTS = 200
# (LOINC, name, unit, reference low, reference high, typical value)
LABS: tuple[tuple[str, str, str, float | None, float, float], ...] = (
    ("4548-4", "HbA1c", "%", 4.0, 6.0, 8.0),
    ("14682-9", "Creatinine", "µmol/L", 57, 111, 95),
    ("30934-4", "BNP", "pg/mL", None, 100, 300),
    ("8480-6", "Systolic BP", "mmHg", 90, 139, 150),
)


def _events(
    patient_id: int, departments: list[int], scale: int
) -> dict[type, list[dict[str, Any]]]:
    """Rows of one patient's history, spread over ten years (``scale`` = share of EVENTS)."""
    now = utcnow()
    rows: dict[type, list[dict[str, Any]]] = {Encounter: [], Observation: [], Prescription: []}
    for i in range(EVENTS["encounters"] * scale // 100):
        start = now - dt.timedelta(days=3650 * i // EVENTS["encounters"] + 1)
        kind = ("outpatient", "outpatient", "inpatient", "emergency")[i % 4]
        rows[Encounter].append(
            {"patient_id": patient_id, "encounter_type": kind, "status": "closed",
             "department_id": departments[i % len(departments)], "started_at": start,
             "ended_at": start + dt.timedelta(days=5 if kind == "inpatient" else 0),
             "chief_complaint": "复查"}
        )  # fmt: skip
    for i in range(EVENTS["observations"] * scale // 100):
        code, name, unit, low, high, base = LABS[i % len(LABS)]
        value = base * (1 + 0.2 * ((i * 7) % 5 - 2) / 2)
        rows[Observation].append(
            {"patient_id": patient_id, "code": code, "name": name, "unit": unit,
             "value_num": Decimal(f"{value:.2f}"), "ref_low": low, "ref_high": high,
             "abnormal_flag": "H" if high is not None and value > high else "N",
             "category": "vital" if unit == "mmHg" else "lab",
             "observed_at": now - dt.timedelta(days=18 * i + 2)}
        )  # fmt: skip
    for i in range(EVENTS["prescriptions"] * scale // 100):
        rows[Prescription].append(
            {"patient_id": patient_id, "drug_code": f"D{i % 12}", "drug_name": f"Drug {i % 12}",
             "dose": Decimal(10), "dose_unit": "mg", "route": "oral", "frequency": "qd",
             "duration_days": 30, "quantity": Decimal(30),
             "prescribed_at": now - dt.timedelta(days=70 * i),
             "status": "active" if i < 8 else "completed"}
        )  # fmt: skip
    return rows


def _build(engine: Engine) -> tuple[int, Actor]:
    """The benchmark patient (500 events), other patients' noise, and a doctor in care."""
    with Session(engine) as session:
        departments = []
        for code in ("ENDO", "CARD", "IM", "ER"):
            dept = Department(code=code, name_zh=code, name_en=code, kind="clinical")
            session.add(dept)
            departments.append(dept)
        patients = [
            Patient(mrn=make_mrn(100_000 + n), family_name="王", given_name="五", full_name="王五",
                    sex="M", birth_date=dt.date(1955, 1, 1), registered_at=utcnow())
            for n in range(OTHER_PATIENTS + 1)
        ]  # fmt: skip
        session.add_all(patients)
        session.flush()
        dept_ids = [d.id for d in departments]
        target = patients[0].id
        for patient in patients:
            scale = 100 if patient.id == target else 20
            for model, rows in _events(patient.id, dept_ids, scale).items():
                if rows:
                    session.execute(insert(model), rows)
        session.add_all(
            [
                Allergy(patient_id=target, substance="青霉素 / Penicillin", noted_at=utcnow()),
                Problem(patient_id=target, code="E11.9", description="2型糖尿病 / Type 2 diabetes",
                        onset_date=dt.date(2015, 1, 1)),
                Problem(patient_id=target, code="I10", description="原发性高血压 / Hypertension"),
            ]
        )  # fmt: skip
        cipher = load_cipher(session)
        for i in range(EVENTS["notes"]):
            note = ClinicalNote(
                patient_id=target,
                title="门诊病历",
                body_enc=b"-",
                written_at=utcnow() - dt.timedelta(days=36 * i),
            )
            session.add(note)
            session.flush()
            note.body_enc = cipher.encrypt(
                f"主诉：复查 {i}。\n诊断：2型糖尿病。",
                table="clinical_notes",
                column="body",
                row_id=note.id,
            )
        session.commit()
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    doctor = Actor(
        user_id=1, username="bench.doctor", display_name="Bench", roles=("doctor",),
        privileges=frozenset({Privilege.VIEW_CLINICAL}), department_ids=(dept_ids[0],),
    )  # fmt: skip
    return target, doctor


def _time(engine: Engine, runs: int, action: Any) -> list[float]:
    timings = []
    for _ in range(runs):
        with Session(engine) as session:
            started = time.perf_counter()
            action(session)
            timings.append((time.perf_counter() - started) * 1000)
            session.rollback()
    return timings


def main() -> None:
    """Build the record, time the summary against one plain query, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    engine = create_engine(fresh_database(DATABASE))
    patient_id, doctor = _build(engine)
    today = local_today()

    def summary(session: Session) -> None:
        build_summary(session=session, actor=doctor, patient_id=patient_id, today=today)

    def single(session: Session) -> None:
        session.scalars(select(Encounter).where(Encounter.patient_id == patient_id)).all()

    _time(engine, 5, summary)  # warm the pool, caches and the plan cache
    _time(engine, 5, single)
    timed = _time(engine, args.runs, summary)
    baseline = _time(engine, args.runs, single)
    p50 = statistics.median(timed)
    p95 = statistics.quantiles(timed, n=20)[18]
    engine.dispose()
    print(
        json.dumps(
            {
                "bench": "summary_page",
                "summary_ms": round(p50, 1),
                "summary_p95_ms": round(p95, 1),
                "events": sum(EVENTS.values()),
                "single_query_ms": round(statistics.median(baseline), 2),
                "overhead_vs_single_query": round(p50 / statistics.median(baseline), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
