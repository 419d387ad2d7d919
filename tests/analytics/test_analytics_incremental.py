"""An incremental refresh gives exactly what a full copy of the same data gives.

A seeded hospital is snapshotted, then changed the ways a hospital changes: a merge
through the service, new patients, visits and charges, a voided charge and patient, paid
invoices, a visit moved to another department, a changed insurance, a survey answered.
The incremental snapshot must then hold the same rows as a fresh full copy (visit and
patient numbers are per-snapshot, so rows are compared through what they stand for), and
the dashboard must show the same figures.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

import factories
from analytics.queries import CHARTS, Filters, kpis
from analytics.snapshot import STATE_FILE, build_snapshot, read_info
from cims.patients.duplicates import merge_patients

NUMBERS = ("row_no", "visit_key", "patient_no")


@pytest.fixture(scope="module")
def hospital(fresh_database: Callable[[str], str]) -> Iterator[Engine]:
    from cims.demo.seed import seed_demo

    engine = create_engine(fresh_database("analytics_incremental"))
    seed_demo(engine, patients=160, seed=5)
    yield engine
    engine.dispose()


def _copy_rows(conn: object, table: str, where: str, **changes: str) -> None:
    """Insert copies of ``table``'s rows matching ``where`` (new ids; ``changes`` set
    columns to SQL expressions), as new activity does."""
    columns = [
        r[0]
        for r in conn.execute(  # type: ignore[attr-defined]
            text(
                "SELECT column_name FROM information_schema.columns WHERE table_name = :t "
                "AND column_name NOT IN ('id', 'row_xid') ORDER BY ordinal_position"
            ),
            {"t": table},
        )
    ]
    values = ", ".join(changes.get(c, c) for c in columns)
    conn.execute(  # type: ignore[attr-defined]
        text(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} FROM {table} WHERE {where}"
        )
    )


def _change(engine: Engine) -> None:
    with Session(engine) as session:
        registrar = factories.actor(session, "registrar")
        survivor, merged = session.execute(
            text(
                "SELECT min(patient_id), max(patient_id) FROM (SELECT patient_id FROM encounters "
                "GROUP BY patient_id HAVING count(*) > 1 ORDER BY patient_id LIMIT 2) t"
            )
        ).one()
        merge_patients(
            session=session, actor=registrar, survivor_id=survivor, merged_id=merged, reason="same"
        )
        factories.patient(session)  # a newcomer with no visits yet
        session.commit()
    with engine.begin() as conn:
        # A day's new visits, with their charges and diagnoses (copies, shifted a day on).
        conn.execute(text("CREATE TEMP TABLE moved (old_id bigint, new_id bigint)"))
        _copy_rows(conn, "encounters", "id % 9 = 0", started_at="started_at + interval '1 day'")
        conn.execute(
            text(
                "INSERT INTO moved SELECT o.id, n.id FROM encounters o JOIN encounters n "
                "ON n.patient_id = o.patient_id AND n.started_at = o.started_at + interval '1 day' "
                "AND n.row_xid IS NOT NULL AND o.id % 9 = 0"
            )
        )
        for table in ("charges", "diagnoses"):
            _copy_rows(
                conn,
                table,
                "encounter_id IN (SELECT old_id FROM moved)",
                encounter_id="(SELECT min(new_id) FROM moved WHERE old_id = encounter_id)",
                **(
                    {"invoice_id": "NULL", "service_date": "service_date + 1"}
                    if table == "charges"
                    else {}
                ),
            )
        conn.execute(
            text(
                "UPDATE charges SET voided = true, voided_at = now(), void_reason = 'error' "
                "WHERE id IN (SELECT id FROM charges WHERE invoice_id IS NULL AND NOT voided "
                "ORDER BY id LIMIT 5)"
            )
        )
        conn.execute(
            text(
                "UPDATE invoices SET paid_amount = patient_amount, status = 'paid' "
                "WHERE id IN (SELECT id FROM invoices WHERE status IN ('issued', 'partially_paid') "
                "ORDER BY id LIMIT 10)"
            )
        )
        conn.execute(
            text(
                "UPDATE encounters SET department_id = (SELECT min(id) FROM departments "
                "WHERE kind = 'clinical') WHERE id IN (SELECT encounter_id FROM charges "
                "WHERE encounter_id IS NOT NULL ORDER BY id DESC LIMIT 3)"
            )
        )
        conn.execute(
            text(
                "UPDATE patients SET insurance_type = CASE insurance_type WHEN 'self_pay' "
                "THEN 'urban_employee' ELSE 'self_pay' END WHERE id IN "
                "(SELECT patient_id FROM charges ORDER BY id LIMIT 4)"
            )
        )
        conn.execute(
            text(
                "UPDATE patients SET voided = true, voided_at = now(), void_reason = 'test' "
                "WHERE id = (SELECT max(patient_id) FROM charges)"
            )
        )
        conn.execute(
            text(
                "UPDATE surveys SET completed_at = sent_at + interval '1 hour', rating_doctor = 5, "
                "recommend = 9 WHERE id IN (SELECT id FROM surveys WHERE completed_at IS NULL "
                "ORDER BY id LIMIT 3)"
            )
        )


def _contents(folder: Path) -> dict[str, list[str]]:
    """Every table's rows, with visit keys replaced by the source visit they stand for
    (through the refresh's private map) and per-snapshot numbers left out."""
    with duckdb.connect(str(folder / "snapshot.duckdb"), read_only=True) as con:
        con.execute(f"ATTACH '{folder / STATE_FILE}' AS stage (READ_ONLY)")
        found: dict[str, list[str]] = {}
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'snapshot' "
            "AND table_name <> 'snapshot_info'"
        ).fetchall()
        for (table,) in tables:
            columns = [c for (c, *_) in con.execute(f"DESCRIBE {table}").fetchall()]
            keep = [f"t.{c}" for c in columns if c not in NUMBERS]
            join = ""
            if "visit_key" in columns:
                keep.append("v.id AS visit")
                join = "LEFT JOIN stage.vmap v ON v.visit_key = t.visit_key"
            rows = con.execute(f"SELECT {', '.join(keep)} FROM {table} t {join}").fetchall()
            found[table] = sorted(repr(r) for r in rows)
    return found


def _dashboard(folder: Path) -> dict[str, object]:
    with duckdb.connect(str(folder / "snapshot.duckdb"), read_only=True) as con:
        [(last,)] = con.execute("SELECT max(started_at)::DATE FROM visits").fetchall()
        filters = Filters(last - dt.timedelta(days=400), last)
        figures: dict[str, object] = {"kpis": kpis(con, filters).to_dict("records")}
        for name, chart in CHARTS.items():
            figures[name] = chart(con, filters).to_dict("records")
    return figures


def test_an_incremental_refresh_equals_a_full_copy(
    hospital: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = hospital.url.render_as_string(hide_password=False)
    live = tmp_path / "live"
    first = build_snapshot(url, folder=live)
    assert first.mode == "full"
    assert oct(os.stat(live / STATE_FILE).st_mode & 0o777) == "0o600"
    _change(hospital)

    second = build_snapshot(url, folder=live)
    assert second.mode == "incremental"
    fresh = tmp_path / "fresh"
    build_snapshot(url, folder=fresh, full=True)

    assert second.rows["visits"] > first.rows["visits"]
    got, want = _contents(live), _contents(fresh)
    assert got.keys() == want.keys()
    for table in want:
        assert got[table] == want[table], table
    assert _dashboard(live) == _dashboard(fresh)
    info = read_info(live / "snapshot.duckdb")
    assert info is not None and info.mode == "incremental"

    # Nothing changed since: the next refresh copies no fact row and changes nothing.
    third = build_snapshot(url, folder=live)
    assert third.mode == "incremental" and third.rows == second.rows
    assert _contents(live) == want


def test_a_state_that_does_not_match_the_snapshot_means_a_full_copy(
    hospital: Engine, tmp_path: Path
) -> None:
    url = hospital.url.render_as_string(hide_password=False)
    folder = tmp_path / "snap"
    build_snapshot(url, folder=folder)
    saved = (folder / STATE_FILE).read_bytes()
    build_snapshot(url, folder=folder)  # a newer state ...
    (folder / STATE_FILE).write_bytes(saved)  # ... lost: the old one is back
    assert build_snapshot(url, folder=folder).mode == "full"
    (folder / STATE_FILE).unlink()
    assert build_snapshot(url, folder=folder).mode == "full"
    assert build_snapshot(url, folder=folder).mode == "incremental"
    assert build_snapshot(url, folder=folder, full=True).mode == "full"


def test_rows_written_by_the_database_are_stamped(hospital: Engine) -> None:
    with hospital.begin() as conn:
        xid = conn.execute(text("SELECT pg_current_xact_id()::text::bigint")).scalar_one()
        conn.execute(
            text(
                "UPDATE invoices SET due_date = due_date WHERE id = (SELECT min(id) FROM invoices)"
            )
        )
        stamped = conn.execute(
            text("SELECT row_xid FROM invoices WHERE id = (SELECT min(id) FROM invoices)")
        ).scalar_one()
    assert stamped == xid
    frame = pd.read_sql("SELECT count(*) AS n FROM charges WHERE row_xid IS NULL", hospital)
    assert int(frame["n"][0]) == 0  # the demo's bulk load went through the default too


def test_after_a_restore_the_refresh_copies_everything(hospital: Engine, tmp_path: Path) -> None:
    """Rows put back by a restore (or a rewritten table) carry stamps that say nothing about
    what the last snapshot saw: new table storage means a full copy."""
    url = hospital.url.render_as_string(hide_password=False)
    folder = tmp_path / "snap"
    build_snapshot(url, folder=folder)
    assert build_snapshot(url, folder=folder).mode == "incremental"
    with hospital.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM FULL surveys"))  # new storage, as a restore gives
    assert build_snapshot(url, folder=folder).mode == "full"
    assert build_snapshot(url, folder=folder).mode == "incremental"
