"""On a seeded demo hospital: the snapshot holds no identifier, and the pages work per role."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from test_pages import _signed_in_page

from analytics.snapshot import AGE_BANDS, SnapshotBusy, _build_lock, build_snapshot, pseudonym
from cims.patients.models import Patient
from cims.security.crypto import load_cipher

DASHBOARD = "pages/manager_dashboard.py"
WORKSPACE = "pages/analytics_workspace.py"
REFRESH = "pages/analytics_refresh.py"
DENIED = "Your role is not allowed to do this."


@pytest.fixture(scope="module")
def demo(
    seeded_app_database: Callable[..., AbstractContextManager[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Path]]:
    """A seeded demo hospital and its snapshot (with Parquet) in a folder of its own."""
    folder = tmp_path_factory.mktemp("analytics")
    previous = os.environ.get("CIMS_ANALYTICS_DIR")
    os.environ["CIMS_ANALYTICS_DIR"] = str(folder)
    try:
        with seeded_app_database("analytics_demo", patients=200, seed=11) as url:
            build_snapshot(url, parquet=True)
            yield url, folder
    finally:
        if previous is None:
            os.environ.pop("CIMS_ANALYTICS_DIR", None)
        else:
            os.environ["CIMS_ANALYTICS_DIR"] = previous


def _identifiers(url: str) -> set[str]:
    """Every name, MRN, ID number, phone, address and contact value of the demo patients."""
    values: set[str] = set()
    engine = create_engine(url)
    with Session(engine) as session:
        cipher = load_cipher(session)
        for p in session.scalars(select(Patient)):
            values |= {p.full_name, p.mrn, p.insurance_number or "", p.temporary_label or ""}
            for column in ("national_id", "phone", "address", "emergency_contact"):
                blob = getattr(p, f"{column}_enc")
                text = cipher.decrypt_text(blob, table="patients", column=column, row_id=p.id)
                values.add(text)
    engine.dispose()
    return {v for v in values if len(v) >= 2}


def _text_values(con: duckdb.DuckDBPyConnection, relation: str) -> set[str]:
    columns = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    found: set[str] = set()
    for name, kind, *_ in columns:
        if kind == "VARCHAR":
            rows = con.execute(f'SELECT DISTINCT "{name}" FROM {relation}').fetchall()
            found |= {r[0] for r in rows if r[0] is not None}
    return found


def test_no_identifier_anywhere_in_the_snapshot_or_parquet(demo: tuple[str, Path]) -> None:
    url, folder = demo
    secrets = _identifiers(url)
    assert len(secrets) > 600  # names, MRNs, IDs, phones, addresses of 200 patients
    files = [folder / "snapshot.duckdb", *(folder / "parquet").rglob("*.parquet")]
    assert len(files) > 10
    for file in files:
        data = file.read_bytes()
        leaked = [s for s in secrets if s.encode() in data]
        assert leaked == [], (file.name, leaked[:3])
    con = duckdb.connect(str(folder / "snapshot.duckdb"), read_only=True)
    tables = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
    texts: set[str] = set()
    for table in tables:
        texts |= _text_values(con, table)
    for file in (folder / "parquet").rglob("*.parquet"):
        texts |= _text_values(con, f"read_parquet('{file}')")
    assert texts and not texts & secrets
    assert not any(len(s) >= 4 and s in text for s in secrets for text in texts)
    # Patients: a keyed pseudonym, sex, payer, an age band; no birth date, no row id.
    columns = [r[0] for r in con.execute("DESCRIBE patients").fetchall()]
    assert columns == ["patient_key", "sex", "insurance_type", "age_band", "registered_month"]
    bands = {r[0] for r in con.execute("SELECT DISTINCT age_band FROM patients").fetchall()}
    allowed = {f"{a}-{b - 1}" for a, b in itertools.pairwise(AGE_BANDS)}
    assert bands <= allowed | {f"{AGE_BANDS[-1]}+", "unknown"}
    keys = {r[0] for r in con.execute("SELECT patient_key FROM patients").fetchall()}
    con.close()
    engine = create_engine(url)
    with Session(engine) as session:
        ids = session.scalars(
            select(Patient.id).where(Patient.voided.is_(False), Patient.merged_into_id.is_(None))
        ).all()
    engine.dispose()
    assert keys == {pseudonym("patient", i) for i in ids}


def test_refresh_swaps_atomically_and_one_at_a_time(demo: tuple[str, Path]) -> None:
    url, folder = demo
    path = folder / "snapshot.duckdb"
    reader = duckdb.connect(str(path), read_only=True)
    before = reader.execute("SELECT count(*) FROM visits").fetchall()
    inode = path.stat().st_ino
    build_snapshot(url)
    # The open reader keeps its (old) file; the path now names a new one.
    assert reader.execute("SELECT count(*) FROM visits").fetchall() == before
    reader.close()
    assert path.stat().st_ino != inode
    assert not [p for p in folder.iterdir() if p.name.endswith(".building")]
    with _build_lock(folder), pytest.raises(SnapshotBusy):
        build_snapshot(url)


def _metric(at: object, label: str) -> str:
    for metric in at.metric:  # type: ignore[attr-defined]
        if metric.label == label:
            return str(metric.value)
    raise AssertionError(label)


def test_manager_changes_the_date_range_and_the_numbers_follow(demo: tuple[str, Path]) -> None:
    url, _ = demo
    at = _signed_in_page(url, "manager", DASHBOARD)
    assert not at.exception, at.exception
    assert at.title[0].value == "Hospital dashboard"
    assert len(at.metric) == 12
    assert len(at.get("plotly_chart")) >= 8
    quarter = _metric(at, "Visits")
    (_start, end) = at.date_input(key="dash_range").value
    at.date_input(key="dash_range").set_value((end - dt.timedelta(days=6), end)).run()
    assert not at.exception, at.exception
    week = _metric(at, "Visits")
    assert week != quarter
    at.session_state["lang"] = "zh"
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "运营看板" and _metric(at, "就诊人次") == week


def test_data_staff_runs_a_query_and_gets_refusals(demo: tuple[str, Path]) -> None:
    url, _ = demo
    at = _signed_in_page(url, "analyst", WORKSPACE)
    assert not at.exception, at.exception
    at.text_area(key="console_sql").input(
        "SELECT encounter_type, count(*) AS n FROM visits GROUP BY 1"
    )
    at.button(key="console_run").click().run()
    assert not at.exception, at.exception
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 3
    at.text_area(key="console_sql").input("DELETE FROM visits")
    at.button(key="console_run").click().run()
    assert [e.value for e in at.error] == [
        "The workspace is read-only: no INSERT, UPDATE, DELETE or CREATE."
    ]


def test_admin_refreshes_with_a_progress_bar(demo: tuple[str, Path]) -> None:
    url, folder = demo
    before = (folder / "snapshot.duckdb").stat().st_mtime_ns
    at = _signed_in_page(url, "admin", REFRESH)
    assert not at.exception, at.exception
    [button] = [b for b in at.button if b.label == "Refresh now"]
    at = button.click().run()
    assert not at.exception, at.exception
    assert at.success[0].value.startswith("Snapshot refreshed")
    assert (folder / "snapshot.duckdb").stat().st_mtime_ns != before
    captions = " ".join(c.value for c in at.caption)
    assert "This refresh: only the changes since the last refresh were copied" in captions

    [full] = [c for c in at.checkbox if c.label.startswith("Copy everything again")]
    full.check()
    [button] = [b for b in at.button if b.label == "Refresh now"]
    at = button.click().run()
    assert not at.exception, at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "This refresh: a full copy" in captions


@pytest.mark.parametrize(
    ("user", "page"),
    [
        ("doctor", DASHBOARD),
        ("finance", DASHBOARD),
        ("manager", WORKSPACE),
        ("admin", WORKSPACE),
        ("nurse", WORKSPACE),
        ("manager", REFRESH),
        ("registrar", REFRESH),
    ],
)
def test_other_roles_are_refused(demo: tuple[str, Path], user: str, page: str) -> None:
    at = _signed_in_page(demo[0], user, page)
    assert [e.value for e in at.error] == [DENIED]
    assert len(at.dataframe) == 0 and len(at.metric) == 0


# The dashboard's figures straight from the copied tables, as first defined (no derived
# tables, patients counted by their keys): the fast path must give the same numbers.
REFERENCE = {
    "volume": (
        "SELECT date_trunc('month', started_at)::DATE AS period, department_code, "
        "encounter_type, count(*) AS visits, count(DISTINCT patient_key) AS patients "
        "FROM visits WHERE started_at >= ? AND started_at < ? GROUP BY ALL ORDER BY ALL"
    ),
    "diagnoses": (
        "SELECT code, count(*) AS diagnoses, count(DISTINCT patient_key) AS patients "
        "FROM diagnoses WHERE diagnosed_at >= ? AND diagnosed_at < ? AND rank = 'primary' "
        "GROUP BY code ORDER BY diagnoses DESC, code LIMIT 10"
    ),
    "no_show_weekday": (
        "SELECT isodow(scheduled_at) AS weekday, count(*) AS appointments, "
        "count(*) FILTER (status = 'no_show') AS no_shows, "
        "count(DISTINCT patient_key) AS patients FROM appointments "
        "WHERE scheduled_at >= ? AND scheduled_at < ? "
        "AND status IN ('seen', 'checked_in', 'no_show') GROUP BY ALL ORDER BY ALL"
    ),
    "wait": (
        "SELECT least(floor(epoch(seen_at - checked_in_at) / 600), 6)::INT * 10 AS wait_min, "
        "count(*) AS appointments, count(DISTINCT patient_key) AS patients FROM appointments "
        "WHERE scheduled_at >= ? AND scheduled_at < ? AND seen_at IS NOT NULL "
        "AND checked_in_at IS NOT NULL GROUP BY ALL ORDER BY ALL"
    ),
}
KPI_REFERENCE = (
    "SELECT count(*) AS discharges, count(*) FILTER (EXISTS (SELECT 1 FROM visits n "
    "WHERE n.patient_key = i.patient_key AND n.encounter_type = 'inpatient' "
    "AND n.started_at > i.ended_at AND n.started_at <= i.ended_at + INTERVAL 30 DAY)) "
    "AS readmissions, avg(epoch(ended_at - started_at) / 86400.0) AS alos "
    "FROM visits i WHERE ended_at >= ? AND ended_at < ? AND encounter_type = 'inpatient'"
)


def test_fast_figures_equal_the_raw_table_definitions(demo: tuple[str, Path]) -> None:
    from analytics.queries import CHARTS, Filters, _kpi_values, suppress

    _, folder = demo
    with duckdb.connect(str(folder / "snapshot.duckdb"), read_only=True) as con:
        [(last,)] = con.execute("SELECT max(started_at)::DATE FROM visits").fetchall()
        filters = Filters(last - dt.timedelta(days=365 * 5), last)  # monthly buckets
        bounds = [
            dt.datetime.combine(filters.start, dt.time()),
            dt.datetime.combine(filters.end + dt.timedelta(days=1), dt.time()),
        ]
        for name, sql in REFERENCE.items():
            expected = suppress(con.execute(sql, bounds).df())
            got = CHARTS[name](con, filters)[list(expected.columns)]
            assert len(expected) > 0 and (~expected["suppressed"]).any(), name
            pd.testing.assert_frame_equal(got, expected, check_dtype=False, obj=name)
        # Patients recur across days: adding up each day's distinct patients would be wrong.
        [(summed, distinct)] = con.execute(
            "SELECT sum(n), (SELECT count(DISTINCT patient_key) FROM visits) FROM ("
            "SELECT count(DISTINCT patient_key) AS n FROM visits GROUP BY started_at::DATE)"
        ).fetchall()
        assert summed > distinct
        values = _kpi_values(con, filters)
        [(discharges, readmissions, alos)] = con.execute(KPI_REFERENCE, bounds).fetchall()
        [(patients,)] = con.execute(
            "SELECT count(DISTINCT patient_key) FROM visits WHERE started_at >= ? "
            "AND started_at < ?",
            bounds,
        ).fetchall()
    assert discharges > 0 and values["patients"] == patients
    assert values["readmission_rate"] == pytest.approx(readmissions / discharges)
    assert values["alos_days"] == pytest.approx(alos)
