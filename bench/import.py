"""Synthea CSV import throughput: COPY + set-based SQL against an ORM object-at-a-time loader.

On a fresh database (``cims_bench_synthea``) the sample_a export (Synthea 2.x, 115 patients)
is imported through ``import_synthea`` — COPY into staging tables, set-based INSERT ...
SELECT, addresses and identifiers encrypted in Python — optionally replicated N times with
fresh ids (``--replicas 50`` gives about 1M rows). Then an ORM loader does the same work the
way an object-at-a-time importer would (for each row: look up its link, add the object,
flush for its id, add the link) on a slice of the same export, in the same run.

- rows_per_s: CIMS rows added (import links not counted) per second of the whole import,
  one transaction, commit included; the actor is committed first, so the import checks its
  files aside on a second connection as the CLI and the import page do.
- orm_rows_per_s: the same measure for the ORM loader on ``--orm-patients`` patients.
- speedup_vs_orm: their ratio.
- reimport_s: the same export imported again (it must add nothing), rolled back.

Last stdout line is one JSON object.

    .venv/bin/python bench/import.py [--replicas N] [--orm-patients P]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import fresh_database
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.orm import Session

from cims.config import PROJECT_ROOT, shared_data_dir
from cims.governance.models import ImportLink
from cims.interop.synthea import import_synthea
from cims.interop.synthea_people import NO_SIGN_IN_HASH
from cims.org.models import Department
from cims.patients.models import Patient
from cims.patients.mrn import make_mrn
from cims.records.models import Diagnosis, Encounter, Prescription, Problem, Procedure
from cims.security.bootstrap import ensure_roles_and_privileges
from cims.security.crypto import load_cipher
from cims.security.models import User
from cims.security.rbac import ROLE_DEFAULTS, Actor

DATABASE = "cims_bench_synthea"
SAMPLE = shared_data_dir() / "synthea" / "sample_a"
BUILT = PROJECT_ROOT / "var" / "bench" / "import"


def _replica_value(value: str, replica: int) -> str:
    """Give a UUID-shaped id a replica-specific prefix; other values stay as they are."""
    if len(value) == 36 and value.count("-") == 4:
        return f"{replica:08x}{value[8:]}"
    return value


def replicated_export(replicas: int) -> Path:
    """sample_a written ``replicas`` times with fresh ids, built once under var/bench/import/."""
    if replicas == 1:
        return SAMPLE
    folder = BUILT / f"sample_a_x{replicas}"
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted(SAMPLE.glob("*.csv")):
        with source.open(encoding="utf-8-sig", newline="") as handle:
            header, *rows = list(csv.reader(handle))
        with (folder / source.name).open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(header)
            for replica in range(replicas):
                for row in rows:
                    writer.writerow([_replica_value(v, replica) for v in row] if replica else row)
    (folder / ".complete").write_text("built\n", encoding="utf-8")
    return folder


def _actor(session: Session) -> Actor:
    user_id = session.execute(
        insert(User)
        .values(username="bench.importer", display_name="Importer", password_hash=NO_SIGN_IN_HASH)
        .returning(User.id)
    ).scalar_one()
    return Actor(
        user_id=user_id,
        username="bench.importer",
        display_name="Importer",
        roles=("admin",),
        privileges=ROLE_DEFAULTS["admin"],
    )


def _read(name: str) -> list[dict[str, str]]:
    with (SAMPLE / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _when(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class OrmLoader:
    """The object-at-a-time baseline: one lookup, one add and one flush per row."""

    def __init__(self, session: Session, actor: Actor, department_id: int) -> None:
        self.session, self.actor, self.department_id = session, actor, department_id
        self.cipher = load_cipher(session)
        self.rows = 0

    def _linked(self, table: str, source_id: str) -> int | None:
        return self.session.scalar(
            select(ImportLink.target_id).where(
                ImportLink.source_system == "orm-bench",
                ImportLink.source_table == table,
                ImportLink.source_id == source_id,
            )
        )

    def _add(self, table: str, source_id: str, row: Any) -> int | None:
        if self._linked(table, source_id) is not None:
            return None
        self.session.add(row)
        self.session.flush()
        self.session.add(
            ImportLink(
                source_system="orm-bench",
                source_table=table,
                source_id=source_id,
                target_table=row.__tablename__,
                target_id=row.id,
            )
        )
        self.rows += 1
        return int(row.id)

    def load(self, patient_count: int) -> None:
        """Load the first ``patient_count`` patients and their clinical rows."""
        people = _read("patients")[:patient_count]
        wanted = {p["Id"] for p in people}
        patients: dict[str, int] = {}
        for p in people:
            new_id = int(
                self.session.scalar(text("SELECT nextval(pg_get_serial_sequence('patients','id'))"))
            )
            address = f"{p['ADDRESS']}, {p['CITY']}, {p['STATE']} {p['ZIP']}"
            row = Patient(
                id=new_id,
                mrn=make_mrn(new_id),
                family_name=p["LAST"],
                given_name=p["FIRST"],
                full_name=f"{p['FIRST']} {p['LAST']}",
                sex=p["GENDER"] if p["GENDER"] in ("M", "F") else "U",
                birth_date=dt.date.fromisoformat(p["BIRTHDATE"]),
                id_type="none",
                insurance_type="self_pay",
                address_enc=self.cipher.encrypt(
                    address, table="patients", column="address", row_id=new_id
                ),
            )
            patients[p["Id"]] = self._add("patients", p["Id"], row) or new_id
        encounters: dict[str, int] = {}
        for e in _read("encounters"):
            if e["PATIENT"] in wanted:
                found = self._add(
                    "encounters",
                    e["Id"],
                    Encounter(
                        patient_id=patients[e["PATIENT"]],
                        encounter_type="outpatient",
                        department_id=self.department_id,
                        started_at=_when(e["START"]),
                        ended_at=_when(e["STOP"]) if e["STOP"] else None,
                        status="closed",
                    ),
                )
                encounters[e["Id"]] = found or 0
        for n, c in enumerate(_read("conditions")):
            if c["PATIENT"] in wanted:
                common = {"patient_id": patients[c["PATIENT"]], "code_system": "SNOMED-CT"}
                self._add(
                    "conditions",
                    str(n),
                    Diagnosis(
                        **common,
                        encounter_id=encounters.get(c["ENCOUNTER"]),
                        code=c["CODE"],
                        description=c["DESCRIPTION"],
                        diagnosed_at=_when(c["START"]),
                    ),
                )
                self._add(
                    "conditions#problem",
                    str(n),
                    Problem(
                        **common,
                        code=c["CODE"],
                        description=c["DESCRIPTION"],
                        onset_date=_when(c["START"]).date(),
                    ),
                )
        for n, m in enumerate(_read("medications")):
            if m["PATIENT"] in wanted:
                self._add(
                    "medications",
                    str(n),
                    Prescription(
                        patient_id=patients[m["PATIENT"]],
                        encounter_id=encounters.get(m["ENCOUNTER"]),
                        drug_code=m["CODE"],
                        drug_name=m["DESCRIPTION"],
                        dose=1,
                        dose_unit="dose",
                        route="unspecified",
                        frequency="unspecified",
                        duration_days=0,
                        quantity=1,
                        prescribed_at=_when(m["START"]),
                    ),
                )
        for n, r in enumerate(_read("procedures")):
            if r["PATIENT"] in wanted:
                self._add(
                    "procedures",
                    str(n),
                    Procedure(
                        patient_id=patients[r["PATIENT"]],
                        encounter_id=encounters.get(r["ENCOUNTER"]),
                        code_system="SNOMED-CT",
                        code=r["CODE"],
                        description=r["DESCRIPTION"],
                        performed_at=_when(r["DATE"]),
                    ),
                )


def main() -> None:
    """Run both loaders and print the JSON result line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=1, help="Copies of sample_a (fresh ids).")
    parser.add_argument("--orm-patients", type=int, default=10, help="ORM slice size.")
    args = parser.parse_args()

    export = replicated_export(args.replicas)
    engine = create_engine(fresh_database(DATABASE))
    with Session(engine) as session:
        ensure_roles_and_privileges(session)
        actor = _actor(session)
        department_id = session.execute(
            insert(Department)
            .values(code="BENCH", name_zh="基准", name_en="Bench")
            .returning(Department.id)
        ).scalar_one()
        load_cipher(session)
        session.commit()

    started = time.perf_counter()
    with Session(engine) as session:
        report = import_synthea(session=session, actor=actor, folder=export)
        session.commit()
    seconds = time.perf_counter() - started
    rows = report.rows_added
    print(f"set-based import: {rows:,} rows in {seconds:.1f} s ({rows / seconds:,.0f} rows/s)")

    started = time.perf_counter()
    with Session(engine) as session:
        again = import_synthea(session=session, actor=actor, folder=export)
        session.rollback()
    reimport_seconds = time.perf_counter() - started
    if again.rows_added:
        raise SystemExit(f"importing the same export again added {again.rows_added} rows")
    print(f"the same export again: nothing added in {reimport_seconds:.1f} s")

    started = time.perf_counter()
    with Session(engine) as session:
        loader = OrmLoader(session, actor, department_id)
        loader.load(args.orm_patients)
        session.commit()
    orm_seconds = time.perf_counter() - started
    orm_rate = loader.rows / orm_seconds
    print(f"ORM loader: {loader.rows:,} rows in {orm_seconds:.1f} s ({orm_rate:,.0f} rows/s)")
    engine.dispose()
    result = {
        "bench": "import",
        "replicas": args.replicas,
        "rows": rows,
        "rows_read": report.rows_read,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "orm_rows": loader.rows,
        "orm_rows_per_s": round(orm_rate),
        "speedup_vs_orm": round(rows / seconds / orm_rate, 1),
        "reimport_s": round(reimport_seconds, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
