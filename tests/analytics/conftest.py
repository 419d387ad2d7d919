"""A tiny hand-made snapshot whose KPIs are computed by hand in the tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from analytics.rollups import build_rollups
from analytics.snapshot import SNAPSHOT_FORMAT

T = dt.datetime
D = dt.date

SCHEMA = {
    "patients": "patient_key VARCHAR, sex VARCHAR, insurance_type VARCHAR, age_band VARCHAR, "
    "registered_month DATE",
    "departments": "code VARCHAR, name_zh VARCHAR, name_en VARCHAR, kind VARCHAR",
    "visits": "visit_key BIGINT, patient_key VARCHAR, encounter_type VARCHAR, "
    "department_code VARCHAR, doctor_key VARCHAR, started_at TIMESTAMP, ended_at TIMESTAMP, "
    "disposition VARCHAR, status VARCHAR, booked BOOLEAN, patient_no INTEGER",
    "appointments": "patient_key VARCHAR, department_code VARCHAR, doctor_key VARCHAR, "
    "status VARCHAR, channel VARCHAR, booked_at TIMESTAMP, scheduled_at TIMESTAMP, "
    "checked_in_at TIMESTAMP, seen_at TIMESTAMP, cancelled_at TIMESTAMP, patient_no INTEGER",
    "diagnoses": "visit_key BIGINT, patient_key VARCHAR, department_code VARCHAR, "
    "encounter_type VARCHAR, code VARCHAR, description VARCHAR, rank VARCHAR, "
    "diagnosed_at TIMESTAMP, patient_no INTEGER",
    "charges": "visit_key BIGINT, patient_key VARCHAR, department_code VARCHAR, "
    "encounter_type VARCHAR, insurance_type VARCHAR, category VARCHAR, source_type VARCHAR, "
    "service_date DATE, amount DECIMAL(12,2), insurance_amount DECIMAL(12,2), "
    "patient_amount DECIMAL(12,2), patient_no INTEGER",
    "invoices": "visit_key BIGINT, patient_key VARCHAR, department_code VARCHAR, "
    "encounter_type VARCHAR, status VARCHAR, issued_at TIMESTAMP, due_date DATE, "
    "total_amount DECIMAL(12,2), patient_amount DECIMAL(12,2), paid_amount DECIMAL(12,2), "
    "patient_no INTEGER",
    "payments": "patient_key VARCHAR, department_code VARCHAR, encounter_type VARCHAR, "
    "method VARCHAR, status VARCHAR, amount DECIMAL(12,2), refunded_amount DECIMAL(12,2), "
    "received_at TIMESTAMP, patient_no INTEGER",
    "surveys": "patient_key VARCHAR, department_code VARCHAR, encounter_type VARCHAR, "
    "sent_at TIMESTAMP, completed_at TIMESTAMP, rating_waiting SMALLINT, "
    "rating_doctor SMALLINT, rating_environment SMALLINT, rating_billing SMALLINT, "
    "recommend SMALLINT, patient_no INTEGER",
    "snapshot_info": "key VARCHAR, value VARCHAR",
}

# January 2026 is the period under test; December 2025 the period before it.
ROWS: dict[str, list[tuple[object, ...]]] = {
    "patients": [(f"p{i}", "F", "self_pay", "35-49", D(2020, 1, 1)) for i in range(1, 7)],
    "departments": [
        ("CARD", "心内科", "Cardiology", "clinical"),
        ("ENDO", "内分泌科", "Endocrinology", "clinical"),
    ],
    "visits": [
        (1, "p1", "outpatient", "CARD", "d1", T(2026, 1, 5, 9), T(2026, 1, 5, 9, 20)),
        (2, "p2", "outpatient", "CARD", "d1", T(2026, 1, 6, 10), None),
        (3, "p3", "outpatient", "ENDO", "d2", T(2026, 1, 7, 11), None),
        (4, "p4", "inpatient", "CARD", "d1", T(2026, 1, 2, 8), T(2026, 1, 6, 8)),
        (5, "p4", "inpatient", "CARD", "d1", T(2026, 1, 20, 8), T(2026, 1, 22, 8)),
        (6, "p5", "inpatient", "ENDO", "d2", T(2026, 1, 10, 8), T(2026, 1, 13, 8)),
        (7, "p6", "emergency", "ENDO", "d2", T(2026, 1, 15, 22), T(2026, 1, 15, 23)),
        (8, "p1", "outpatient", "CARD", "d1", T(2025, 12, 10, 9), None),
        (9, "p2", "outpatient", "CARD", "d1", T(2025, 12, 11, 9), None),
        (10, "p3", "inpatient", "ENDO", "d2", T(2025, 12, 12, 9), T(2025, 12, 14, 9)),
    ],
    "appointments": [
        (
            "p1",
            "CARD",
            "d1",
            "seen",
            "portal",
            T(2026, 1, 1, 9),
            T(2026, 1, 5, 9),
            T(2026, 1, 5, 8, 50),
            T(2026, 1, 5, 9, 10),
            None,
        ),
        (
            "p2",
            "CARD",
            "d1",
            "seen",
            "front_desk",
            T(2026, 1, 6, 8),
            T(2026, 1, 6, 10),
            T(2026, 1, 6, 9, 55),
            T(2026, 1, 6, 10, 25),
            None,
        ),
        (
            "p3",
            "ENDO",
            "d2",
            "no_show",
            "phone",
            T(2026, 1, 2, 11),
            T(2026, 1, 7, 11),
            None,
            None,
            None,
        ),
        (
            "p5",
            "ENDO",
            "d2",
            "cancelled",
            "portal",
            T(2026, 1, 3, 9),
            T(2026, 1, 9, 9),
            None,
            None,
            T(2026, 1, 4, 9),
        ),
    ],
    "diagnoses": [
        (
            1,
            "p1",
            "CARD",
            "outpatient",
            "I10",
            "原发性高血压 / Essential hypertension",
            "primary",
            T(2026, 1, 5, 9),
        ),
        (
            2,
            "p2",
            "CARD",
            "outpatient",
            "I10",
            "原发性高血压 / Essential hypertension",
            "primary",
            T(2026, 1, 6, 10),
        ),
    ],
    "charges": [
        (
            1,
            "p1",
            "CARD",
            "outpatient",
            "self_pay",
            "lab",
            "order",
            D(2026, 1, 5),
            "100.00",
            "60.00",
            "40.00",
        ),
        (
            4,
            "p4",
            "CARD",
            "inpatient",
            "self_pay",
            "bed",
            "bed_day",
            D(2026, 1, 3),
            "1000.00",
            "800.00",
            "200.00",
        ),
        (
            3,
            "p3",
            "ENDO",
            "outpatient",
            "self_pay",
            "drug",
            "prescription",
            D(2026, 1, 7),
            "50.50",
            "0.00",
            "50.50",
        ),
        (
            8,
            "p1",
            "CARD",
            "outpatient",
            "self_pay",
            "lab",
            "order",
            D(2025, 12, 10),
            "80.00",
            "0.00",
            "80.00",
        ),
    ],
    "invoices": [
        (3, "p3", "ENDO", "outpatient", "issued", T(2026, 1, 7, 12), None, "50.50", "50.50", "0"),
        (4, "p4", "CARD", "inpatient", "partly_paid", T(2026, 1, 6, 9), None, "1000", "200", "150"),
        (1, "p1", "CARD", "outpatient", "paid", T(2026, 1, 5, 10), None, "100", "40", "40"),
        (2, "p2", "CARD", "outpatient", "issued", T(2026, 2, 10, 10), None, "30", "30", "0"),
    ],
    "payments": [
        ("p1", "CARD", "outpatient", "cash", "succeeded", "40.00", "0", T(2026, 1, 5, 10)),
        ("p4", "CARD", "inpatient", "card", "partly_refunded", "200", "50", T(2026, 1, 6, 9)),
        ("p3", "ENDO", "outpatient", "wechat", "failed", "50.50", "0", T(2026, 1, 7, 12)),
        ("p3", "ENDO", "outpatient", "alipay", "pending", "50.50", "0", T(2026, 1, 8, 12)),
    ],
    "surveys": [
        ("p1", "CARD", "outpatient", T(2026, 1, 5), T(2026, 1, 6), 5, 5, 4, 4, 10),
        ("p2", "CARD", "outpatient", T(2026, 1, 6), T(2026, 1, 7), 3, 3, 3, 3, 6),
        ("p3", "ENDO", "outpatient", T(2026, 1, 7), T(2026, 1, 8), 4, 4, 4, None, 9),
    ],
    "snapshot_info": [
        ("built_at", "2026-02-01T00:00:00+00:00"),
        ("format", str(SNAPSHOT_FORMAT)),
        ("rows.visits", "10"),
        ("build_seconds", "0.1"),
    ],
}


def write_tiny_snapshot(path: Path) -> Path:
    """Write the fixed dataset as a snapshot file (same tables and columns as a refresh,
    patients numbered as a refresh numbers them, and the dashboard's derived tables)."""
    con = duckdb.connect(str(path))
    for table, columns in SCHEMA.items():
        con.execute(f"CREATE TABLE {table} ({columns})")
        width = con.execute(f"SELECT count(*) FROM pragma_table_info('{table}')").fetchall()[0][0]
        for row in ROWS[table]:
            padded = tuple(row) + (None,) * (width - len(row))
            con.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * width)})", padded)
        if "patient_no INTEGER" in columns:
            con.execute(
                f"UPDATE {table} SET patient_no = n.patient_no FROM (SELECT patient_key, "
                "row_number() OVER (ORDER BY patient_key) AS patient_no FROM patients) n "
                f"WHERE n.patient_key = {table}.patient_key"
            )
    build_rollups(con)
    con.close()
    return path


@pytest.fixture
def tiny_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The fixed dataset as the current snapshot (CIMS_ANALYTICS_DIR points at it)."""
    monkeypatch.setenv("CIMS_ANALYTICS_DIR", str(tmp_path))
    yield write_tiny_snapshot(tmp_path / "snapshot.duckdb")
