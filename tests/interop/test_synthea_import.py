"""Synthea CSV import: both layouts, idempotency, rejections, all-or-nothing, no plaintext."""

from __future__ import annotations

import csv
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

import factories
from cims.config import shared_data_dir
from cims.governance.models import ImportRun
from cims.interop import synthea, synthea_stager
from cims.interop.synthea import InvalidImport, import_synthea
from cims.patients.models import Patient, PatientIdentifier
from cims.security.crypto import load_cipher
from cims.security.models import User
from cims.security.passwords import verify_password
from cims.security.rbac import AccessDenied

DATA = shared_data_dir() / "synthea"
SAMPLE_A, SAMPLE_C = DATA / "sample_a", DATA / "sample_c"


def _rows(path: Path) -> int:
    with path.open(encoding="utf-8") as handle:
        return sum(1 for _ in handle) - 1


@pytest.fixture(scope="module")
def imported(fresh_database: Callable[[str], str]) -> Iterator[tuple[str, dict[str, object]]]:
    """A database holding both samples, committed; with the two import reports."""
    from cims.security.bootstrap import ensure_roles_and_privileges

    url = fresh_database("interop")
    engine = create_engine(url)
    with Session(engine) as session:
        ensure_roles_and_privileges(session)
        admin = factories.actor(session, "admin")
        reports = {
            name: import_synthea(session=session, actor=admin, folder=folder)
            for name, folder in (("a", SAMPLE_A), ("c", SAMPLE_C))
        }
        session.commit()
    engine.dispose()
    yield url, reports


def test_sample_a_2x_layout_imports_every_row(imported: tuple[str, dict[str, object]]) -> None:
    report = imported[1]["a"]
    assert isinstance(report, synthea.ImportReport)
    assert report.layout == "synthea-2.x"
    assert report.rejected_counts == {}
    added = report.added
    assert added["patients"] == _rows(SAMPLE_A / "patients.csv") == 115
    assert added["encounters"] == _rows(SAMPLE_A / "encounters.csv") == 4402
    assert added["diagnoses"] == added["problems"] == _rows(SAMPLE_A / "conditions.csv")
    assert added["prescriptions"] == _rows(SAMPLE_A / "medications.csv")
    assert added["procedures"] == _rows(SAMPLE_A / "procedures.csv") + _rows(
        SAMPLE_A / "immunizations.csv"
    )
    assert added["allergies"] == _rows(SAMPLE_A / "allergies.csv")
    assert added["treatment_plans"] == _rows(SAMPLE_A / "careplans.csv")
    assert added["departments"] == _rows(SAMPLE_A / "organizations.csv")
    assert added["users"] == _rows(SAMPLE_A / "providers.csv")
    # Known files without a CIMS table are reported, not silently dropped.
    assert set(report.unknown["unmapped_files"]) == {
        "devices.csv",
        "supplies.csv",
        "imaging_studies.csv",
    }


def test_sample_c_newest_layout_with_claims(imported: tuple[str, dict[str, object]]) -> None:
    report = imported[1]["c"]
    assert isinstance(report, synthea.ImportReport)
    assert report.layout == "synthea-3.x"
    assert report.rejected_counts == {}
    added = report.added
    assert added["patients"] == 11
    assert added["encounters"] == _rows(SAMPLE_C / "encounters.csv")
    assert added["observations"] == _rows(SAMPLE_C / "observations.csv")
    assert added["invoices"] == _rows(SAMPLE_C / "claims.csv")
    assert added["charges"] + added["payments"] == _rows(SAMPLE_C / "claims_transactions.csv")
    assert report.unknown["columns"] == {}


def test_imported_rows_keep_codes_units_and_identifiers(
    imported: tuple[str, dict[str, object]],
) -> None:
    engine = create_engine(imported[0])
    with Session(engine) as session:
        systems = set(session.scalars(text("SELECT DISTINCT code_system FROM diagnoses")))
        assert systems == {"SNOMED-CT"}
        units = session.scalar(text("SELECT count(*) FROM observations WHERE unit IS NOT NULL"))
        assert units and units > 2000
        kinds = dict(
            session.execute(
                text("SELECT encounter_type, count(*) FROM encounters GROUP BY encounter_type")
            ).all()
        )
        assert set(kinds) == {"outpatient", "inpatient", "emergency"}
        # SSN kept encrypted with a blind index; decrypts to the file's value.
        cipher = load_cipher(session)
        row = session.scalars(
            select(PatientIdentifier).where(PatientIdentifier.system == "us-ssn").limit(1)
        ).one()
        ssn = cipher.decrypt_text(
            row.value_enc, table="patient_identifiers", column="value", row_id=row.id
        )
        assert ssn.startswith("999-") and row.value_bidx == cipher.blind_index(
            ssn, purpose="us-ssn"
        )
        # Imported clinicians can never sign in.
        clinician = session.scalars(
            select(User).where(User.username.like("synthea\\_%")).limit(1)
        ).one()
        assert not clinician.is_active and not verify_password("x", clinician.password_hash)
    engine.dispose()


def test_second_import_adds_nothing(imported: tuple[str, dict[str, object]]) -> None:
    engine = create_engine(imported[0])
    with Session(engine) as session:
        before = session.scalar(select(func.count(Patient.id)))
        report = import_synthea(
            session=session, actor=factories.actor(session, "data_staff"), folder=SAMPLE_C
        )
        assert report.rows_added == 0
        assert report.skipped["encounters"] == _rows(SAMPLE_C / "encounters.csv")
        assert session.scalar(select(func.count(Patient.id))) == before
        session.rollback()
    engine.dispose()


def test_pg_dump_holds_no_plaintext_identifiers(imported: tuple[str, dict[str, object]]) -> None:
    from cims.embedded import postgres_bin_dir

    url = imported[0]
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    dump = subprocess.run(
        [str(postgres_bin_dir() / "pg_dump"), "--data-only", "--dbname", plain],
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8", "replace")
    assert "COPY public.patient_identifiers" in dump
    secrets: list[str] = []
    for folder in (SAMPLE_A, SAMPLE_C):
        with (folder / "patients.csv").open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                secrets += [row[k] for k in ("SSN", "DRIVERS", "PASSPORT", "ADDRESS") if row[k]]
    assert len(secrets) > 400
    assert [value for value in secrets if value in dump] == []


def _copy_sample(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    shutil.copytree(SAMPLE_C, folder)
    return folder


def _add_orphan_visit(folder: Path) -> list[str]:
    """Append a visit of a patient that does not exist; returns the file's lines before."""
    encounters = folder / "encounters.csv"
    lines = encounters.read_text(encoding="utf-8").splitlines()
    orphan = lines[1].split(",")
    orphan[0], orphan[3] = "11111111-2222-3333-4444-555555555555", "no-such-patient"
    encounters.write_text("\n".join([*lines, ",".join(orphan)]) + "\n", encoding="utf-8")
    return lines


def test_bad_rows_are_rejected_with_file_line_and_reason(session: Session, tmp_path: Path) -> None:
    folder = _copy_sample(tmp_path)
    lines = _add_orphan_visit(folder)
    conditions = folder / "conditions.csv"
    rows = conditions.read_text(encoding="utf-8").splitlines()
    broken = rows[1].split(",")
    broken[0] = "not-a-date"
    rows[1] = ",".join(broken)
    # Well formed but not a day, and an hour past 23: rejected, never a failed cast.
    for line, column, value in ((2, 0, "2020-02-31"), (3, 1, "2020-01-01T25:00:00Z")):
        fields = rows[line].split(",")
        fields[column] = value
        rows[line] = ",".join(fields)
    conditions.write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "widgets.csv").write_text("A,B\n1,2\n", encoding="utf-8")
    meds = folder / "medications.csv"
    med_lines = meds.read_text(encoding="utf-8").splitlines()
    not_a_number = med_lines[1].split(",")
    not_a_number[9] = "NaN"  # DISPENSES
    med_lines[1] = ",".join(not_a_number)
    meds.write_text(
        "\n".join([med_lines[0] + ",EXTRA"] + [m + ",x" for m in med_lines[1:]]) + "\n",
        encoding="utf-8",
    )

    report = import_synthea(session=session, actor=factories.actor(session, "admin"), folder=folder)
    assert report.rejected["encounters"] == [
        {"line": len(lines) + 1, "reason": "PATIENT not found"}
    ]
    assert report.rejected["conditions"] == [
        {"line": 2, "reason": "bad START"},
        {"line": 3, "reason": "bad START"},
        {"line": 4, "reason": "bad STOP"},
    ]
    assert report.rejected["medications"] == [{"line": 2, "reason": "bad DISPENSES"}]
    assert report.added["encounters"] == len(lines) - 1
    assert report.added["diagnoses"] == len(rows) - 4
    assert report.unknown["files"] == ["widgets.csv"]
    assert report.unknown["columns"] == {"medications.csv": ["EXTRA"]}
    assert "encounters.csv," in report.rejected_csv()
    run = session.get(ImportRun, report.run_id)
    assert run is not None and run.status == "succeeded"
    assert run.rejected == {
        "counts": {"encounters": 1, "conditions": 3, "medications": 1},
        "rows": report.rejected,
    }


def test_a_failure_mid_import_leaves_nothing(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = factories.actor(session, "admin")
    tables = ("patients", "encounters", "diagnoses", "import_links", "import_runs")
    before = {t: session.scalar(text(f"SELECT count(*) FROM {t}")) for t in tables}

    def crash(_ctx: object) -> None:
        raise RuntimeError("disk full")

    loaders = tuple((s, crash if s == "medications" else f) for s, f in synthea._LOADERS)
    monkeypatch.setattr(synthea, "_LOADERS", loaders)
    # The import's transaction (a savepoint here, as in any caller's session) rolls back whole.
    attempt = session.begin_nested()
    with pytest.raises(RuntimeError):
        import_synthea(session=session, actor=admin, folder=SAMPLE_C)
    attempt.rollback()
    assert {t: session.scalar(text(f"SELECT count(*) FROM {t}")) for t in tables} == before


def test_refusals(session: Session, tmp_path: Path) -> None:
    with pytest.raises(InvalidImport) as refused:
        import_synthea(session=session, actor=factories.actor(session, "admin"), folder=tmp_path)
    assert refused.value.problems == ["import.no_patients_file"]
    with pytest.raises(AccessDenied):
        import_synthea(session=session, actor=factories.actor(session, "nurse"), folder=SAMPLE_C)


def test_a_ragged_file_takes_the_careful_path_and_keeps_every_other_row(
    session: Session, tmp_path: Path
) -> None:
    folder = _copy_sample(tmp_path)
    conditions = folder / "conditions.csv"
    rows = conditions.read_text(encoding="utf-8").splitlines()
    # A row cut short (COPY refuses the whole file): it is padded, then rejected by rule.
    rows.append(",".join(rows[1].split(",")[:3]))
    conditions.write_text("\n".join(rows) + "\n", encoding="utf-8")

    report = import_synthea(session=session, actor=factories.actor(session, "admin"), folder=folder)
    assert report.rejected["conditions"] == [{"line": len(rows), "reason": "CODE missing"}]
    assert report.added["diagnoses"] == len(rows) - 2


def test_identical_rows_in_a_file_are_both_kept_and_never_doubled(
    session: Session, tmp_path: Path
) -> None:
    folder = _copy_sample(tmp_path)
    immunizations = folder / "immunizations.csv"
    rows = immunizations.read_text(encoding="utf-8").splitlines()
    immunizations.write_text("\n".join([*rows, rows[1]]) + "\n", encoding="utf-8")
    admin = factories.actor(session, "admin")

    first = import_synthea(session=session, actor=admin, folder=folder)
    again = import_synthea(session=session, actor=admin, folder=folder)
    assert first.read["immunizations"] == len(rows)
    assert first.rejected_counts.get("immunizations", 0) == 0
    assert again.skipped["immunizations"] == len(rows)
    assert again.added.get("procedures", 0) == 0


def test_a_dangling_reference_fails_the_set_based_key_check(session: Session) -> None:
    from cims.interop.synthea_steps import Context, check_keys

    patient = factories.patient(session)
    session.flush()
    ctx = Context(main=synthea._raw_cursor(session), run_id=0, actor_id=None)
    ctx.execute("SET LOCAL session_replication_role = replica")
    ctx.cursor.execute(
        "INSERT INTO problems (patient_id, code_system, code, description, status)"
        " VALUES (%s, 'ICD-10', 'I10', 'x', 'active'), (987654321, 'ICD-10', 'I10', 'x',"
        " 'active') RETURNING id",
        (patient.id,),
    )
    low, high = (row[0] for row in ctx.cursor.fetchall())
    ctx.execute("SET LOCAL session_replication_role = origin")
    with pytest.raises(RuntimeError, match=r"problems\.patient_id = 987654321"):
        check_keys(ctx, "problems", (low, high), {"patient_id"})
    check_keys(ctx, "problems", (low, low), {"patient_id"})
    # A key the INSERT did not set is not looked at.
    check_keys(ctx, "problems", (low, high), {"code"})


def test_a_staged_reference_to_an_earlier_row_is_checked_where_it_was_resolved(
    session: Session,
) -> None:
    from cims.interop.synthea_steps import Context, check_keys

    patient = factories.patient(session)
    session.flush()
    ctx = Context(main=synthea._raw_cursor(session), run_id=0, actor_id=None)
    ctx.execute(
        "CREATE TEMP TABLE stg_probe (reject text, patient_id bigint, patient_id_new boolean)"
    )
    # Ids this run gave its own new rows are not looked up; earlier rows are.
    ctx.cursor.execute(
        "INSERT INTO stg_probe VALUES (NULL, %s, false), (NULL, 987654321, true),"
        " ('rejected', 987654322, false)",
        (patient.id,),
    )
    check_keys(ctx, "problems", (0, 0), {"patient_id"}, "stg_probe")
    ctx.cursor.execute("INSERT INTO stg_probe VALUES (NULL, 987654323, false)")
    with pytest.raises(RuntimeError, match=r"problems\.patient_id = 987654323"):
        check_keys(ctx, "problems", (0, 0), {"patient_id"}, "stg_probe")


def test_only_referenced_files_keep_link_rows_the_rest_keep_their_key(
    imported: tuple[str, dict[str, object]],
) -> None:
    engine = create_engine(imported[0])
    with engine.connect() as conn:
        linked = set(
            conn.scalars(
                text(
                    "SELECT DISTINCT source_table FROM import_links WHERE source_system = 'synthea'"
                )
            )
        )
        assert linked <= {"organizations", "providers", "patients", "claims", "claims_transactions"}
        for table in ("encounters", "diagnoses", "problems", "prescriptions", "procedures"):
            unkeyed = conn.scalar(text(f"SELECT count(*) FROM {table} WHERE source_id IS NULL"))
            assert unkeyed == 0, table
        # Identical content in two files never shares a key with another patient's row.
        assert (
            conn.scalar(
                text(
                    "SELECT count(*) FROM (SELECT patient_id, source_id FROM procedures"
                    " GROUP BY 1, 2 HAVING count(*) > 1) twice"
                )
            )
            == 0
        )
    engine.dispose()


def test_a_later_export_adds_only_its_new_rows_and_finds_earlier_visits(
    session: Session, tmp_path: Path
) -> None:
    admin = factories.actor(session, "admin")
    first = import_synthea(session=session, actor=admin, folder=SAMPLE_A)
    assert first.added["prescriptions"] == _rows(SAMPLE_A / "medications.csv")
    # The next export: the same patients and medications plus one new prescription in a
    # visit of the first export, whose encounters file is not part of it.
    folder = tmp_path / "later"
    folder.mkdir()
    shutil.copy(SAMPLE_A / "patients.csv", folder)
    lines = (SAMPLE_A / "medications.csv").read_text(encoding="utf-8").splitlines()
    fields = next(csv.reader([lines[1]]))
    fields[5], fields[6] = "999001", "Later-export test tablet"
    (folder / "medications.csv").write_text(
        "\n".join([*lines, ",".join(fields)]) + "\n", encoding="utf-8"
    )

    later = import_synthea(session=session, actor=admin, folder=folder)
    assert later.rejected_counts == {}
    assert later.skipped["medications"] == len(lines) - 1
    assert later.rows_added == later.added["prescriptions"] == 1
    added = session.execute(
        text(
            "SELECT p.drug_code, e.source_id FROM prescriptions p"
            " JOIN encounters e ON e.id = p.encounter_id WHERE p.drug_code = '999001'"
        )
    ).all()
    assert added == [("999001", fields[4])]
    assert import_synthea(session=session, actor=admin, folder=folder).rows_added == 0

    # One earlier patient among many: their rows are read through the patient index.
    one = tmp_path / "one_patient"
    one.mkdir()
    people = (SAMPLE_A / "patients.csv").read_text(encoding="utf-8").splitlines()
    patient = fields[2]
    (one / "patients.csv").write_text(
        "\n".join([people[0], *(p for p in people if p.startswith(patient))]) + "\n",
        encoding="utf-8",
    )
    mine = [line for line in lines[1:] if line.split(",")[2] == patient]
    fields[5], fields[6] = "999002", "One-patient export test tablet"
    (one / "medications.csv").write_text(
        "\n".join([lines[0], *mine, ",".join(fields)]) + "\n", encoding="utf-8"
    )
    session.execute(text("ANALYZE patients"))
    single = import_synthea(session=session, actor=admin, folder=one)
    assert single.skipped["medications"] == len(mine)
    assert single.rows_added == single.added["prescriptions"] == 1


def test_links_of_an_import_before_0010_move_onto_the_rows(
    fresh_database: Callable[[str], str],
) -> None:
    from cims import migrate
    from cims.security.bootstrap import ensure_roles_and_privileges

    url = fresh_database("keys_0010")
    engine = create_engine(url)
    with Session(engine) as session:
        ensure_roles_and_privileges(session)
        admin = factories.actor(session, "admin")
        import_synthea(session=session, actor=admin, folder=SAMPLE_A)
        session.commit()
    count = "SELECT count(*) FROM import_links WHERE source_table = :table"
    migrate.downgrade(url, "0009")
    with engine.connect() as conn:
        assert conn.scalar(text(count), {"table": "medications"}) == _rows(
            SAMPLE_A / "medications.csv"
        )
        assert conn.scalar(text(count), {"table": "immunizations"}) == _rows(
            SAMPLE_A / "immunizations.csv"
        )
    migrate.upgrade(url)
    engine.dispose()
    engine = create_engine(url)
    with Session(engine) as session:
        for table in ("medications", "immunizations", "encounters", "conditions#problem"):
            assert session.scalar(text(count), {"table": table}) == 0
        again = import_synthea(session=session, actor=admin, folder=SAMPLE_A)
        assert again.rows_added == 0
        assert again.skipped["medications"] == _rows(SAMPLE_A / "medications.csv")
        session.rollback()
    engine.dispose()


def _bad_export(tmp_path: Path) -> Path:
    """sample_c with an orphan visit and a condition dated 31 February."""
    folder = _copy_sample(tmp_path)
    _add_orphan_visit(folder)
    conditions = folder / "conditions.csv"
    rows = conditions.read_text(encoding="utf-8").splitlines()
    rows[1] = "2020-02-31" + rows[1][rows[1].index(",") :]
    conditions.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def _committed_admin(url: str) -> tuple[Any, Any]:
    from cims.security.bootstrap import ensure_roles_and_privileges

    engine = create_engine(url)
    with Session(engine) as session:
        ensure_roles_and_privileges(session)
        admin = factories.actor(session, "admin")
        session.commit()
    return engine, admin


TABLES = ("patients", "patient_identifiers", "encounters", "diagnoses", "problems",
          "prescriptions", "procedures", "allergies", "treatment_plans", "observations",
          "invoices", "charges", "payments", "users", "departments", "import_links")  # fmt: skip


def _counts(engine: Any) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.scalar(text(f"SELECT count(*) FROM {t}")) for t in TABLES}


def test_checking_aside_on_a_second_connection_imports_exactly_the_same(
    fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    folder = _bad_export(tmp_path)
    reports, counts = {}, {}
    for parallel in (False, True):
        engine, admin = _committed_admin(fresh_database(f"aside_{parallel}"))
        with Session(engine) as session:
            assert synthea_stager.available(synthea._raw_cursor(session))
            report = import_synthea(session=session, actor=admin, folder=folder, parallel=parallel)
            session.commit()
        assert report.connections == (2 if parallel else 1)
        reports[parallel] = (report.read, report.added, report.skipped, report.rejected,
                             report.rejected_counts, report.unknown)  # fmt: skip
        counts[parallel] = _counts(engine)
        with engine.connect() as conn:
            assert (
                conn.scalar(
                    text("SELECT count(*) FROM pg_tables WHERE schemaname = 'import_staging'")
                )
                == 0
            )
        if parallel:
            with Session(engine) as session:
                again = import_synthea(session=session, actor=admin, folder=folder)
                session.commit()
            assert again.rows_added == 0
            assert again.skipped["encounters"] == report.added["encounters"]
            assert _counts(engine) == counts[True]
        engine.dispose()
    assert reports[True] == reports[False]
    assert counts[True] == counts[False]
    assert reports[True][4] == {"encounters": 1, "conditions": 1}


def test_a_transaction_that_has_written_checks_on_its_own_connection(session: Session) -> None:
    factories.patient(session)
    session.flush()
    assert not synthea_stager.available(synthea._raw_cursor(session))


@pytest.mark.parametrize("half", ["checking", "writing"])
def test_a_failure_while_checking_aside_leaves_nothing(
    fresh_database: Callable[[str], str], monkeypatch: pytest.MonkeyPatch, half: str
) -> None:
    engine, admin = _committed_admin(fresh_database(f"aside_fail_{half}"))
    before = _counts(engine)

    def broken(ctx: Any) -> Iterator[None]:
        if half == "checking":
            raise RuntimeError("broken while checking")
        yield
        raise RuntimeError("broken while writing")

    loaders = tuple((s, broken if s == "medications" else f) for s, f in synthea._LOADERS)
    monkeypatch.setattr(synthea, "_LOADERS", loaders)
    with Session(engine) as session:
        with pytest.raises(RuntimeError, match=f"broken while {half}"):
            import_synthea(session=session, actor=admin, folder=SAMPLE_A, parallel=True)
        session.rollback()
    assert _counts(engine) == before
    # What the failed import staged is gone with the next one.
    monkeypatch.undo()
    with Session(engine) as session:
        report = import_synthea(session=session, actor=admin, folder=SAMPLE_A, parallel=True)
        session.commit()
    assert report.added["prescriptions"] == _rows(SAMPLE_A / "medications.csv")
    engine.dispose()


def test_a_dangling_key_of_a_table_without_ids_is_found_in_its_select(session: Session) -> None:
    from cims.interop.synthea_steps import Context, check_selected_keys

    ctx = Context(main=synthea._raw_cursor(session), run_id=0, actor_id=None)
    select = "SELECT %(user)s::bigint, r.id FROM roles r WHERE r.code = 'doctor'"
    user = factories.user(session, "doctor")
    session.flush()
    check_selected_keys(ctx, "user_roles", "user_id, role_id", select, {"user": user.id})
    with pytest.raises(RuntimeError, match=r"user_roles\.user_id = 987654321 points at no users"):
        check_selected_keys(ctx, "user_roles", "user_id, role_id", select, {"user": 987654321})


@pytest.mark.parametrize("parallel", [False, True])
def test_a_patients_file_gone_mid_import_rejects_rows_instead_of_hanging(
    fresh_database: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    parallel: bool,
) -> None:
    engine, admin = _committed_admin(fresh_database(f"gone_{parallel}"))
    folder = tmp_path / "export"
    shutil.copytree(SAMPLE_A, folder)
    staging = synthea.stage_file

    def vanishing(cursor: Any, where: Path, stem: str, kind: str = "TEMP") -> Any:
        if stem == "patients":
            return None  # as if the file had been deleted after the import started
        return staging(cursor, where, stem, kind)

    monkeypatch.setattr(synthea, "stage_file", vanishing)
    with Session(engine) as session:
        report = import_synthea(session=session, actor=admin, folder=folder, parallel=parallel)
        session.rollback()
    assert "patients" not in report.read
    assert report.rejected_counts["encounters"] == _rows(SAMPLE_A / "encounters.csv")
    engine.dispose()
