"""Demo-hospital load speed: the vectorised COPY pipeline against naive ORM inserts.

Seeds N patients with their whole history (default 20,000) into a fresh database and
reports rows per second; the baseline inserts the same kind of rows one ORM object at a
time (patients, then encounters) for a fixed count. Last stdout line is one JSON object.

    .venv/bin/python bench/seed_demo.py [--patients N] [--baseline-rows N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import fresh_database
from sqlalchemy import create_engine
from sqlalchemy.orm import Session


def _orm_baseline(url: str, rows: int) -> float:
    """Rows per second inserting patients and encounters one ORM object at a time."""
    from cims.base import utcnow
    from cims.org.models import Department
    from cims.patients.models import Patient
    from cims.patients.mrn import make_mrn
    from cims.records.models import Encounter

    engine = create_engine(url)
    with Session(engine) as session:
        dep = Department(code="BENCH", name_zh="内科", name_en="Medicine")
        session.add(dep)
        session.flush()
        started = time.perf_counter()
        for i in range(rows // 2):
            patient = Patient(
                mrn=make_mrn(i + 1),
                family_name="王",
                given_name="伟",
                full_name="王伟",
                sex="M",
                birth_date=dt.date(1960, 1, 1),
                insurance_type="self_pay",
            )
            session.add(patient)
            session.flush()  # the naive way: one round trip per object to learn its id
            session.add(
                Encounter(
                    patient_id=patient.id,
                    encounter_type="outpatient",
                    department_id=dep.id,
                    started_at=utcnow(),
                    status="closed",
                )
            )
            session.flush()
        session.commit()
        seconds = time.perf_counter() - started
    engine.dispose()
    return (rows // 2) * 2 / seconds


def main() -> None:
    """Run both loads and print the JSON result line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--baseline-rows", type=int, default=10_000)
    args = parser.parse_args()

    from cims.demo.seed import seed_demo

    url = fresh_database("cims_bench_seed")
    engine = create_engine(url)
    report = seed_demo(
        engine, patients=args.patients, seed=42, reference_date=dt.date(2026, 11, 26)
    )
    engine.dispose()
    copy_rate = report.total_rows / report.seconds
    orm_rate = _orm_baseline(fresh_database("cims_bench_seed_orm"), args.baseline_rows)
    result = {
        "bench": "seed_demo",
        "patients": args.patients,
        "rows": report.total_rows,
        "seed_s": round(report.seconds, 2),
        "seed_rows_per_s": round(copy_rate),
        "orm_rows_per_s": round(orm_rate),
        "speedup_vs_orm": round(copy_rate / orm_rate, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
