"""Narrow, date-sorted tables derived from the snapshot's tables for the dashboard.

A refresh builds them after the copied tables (and the tests build them on their
hand-made snapshot), so the dashboard reads a period's rows instead of whole tables:
each is sorted by day, and DuckDB's min/max zone maps skip the row groups outside the
period. They keep ``patient_no`` at row level, so distinct-patient counts (and with them
small-group suppression) stay exact for any period; nothing is summed across days.
"""

from __future__ import annotations

from typing import Final

import duckdb

from analytics.queries import OPEN_INVOICE

# name -> query; each reads only snapshot tables.
ROLLUPS: Final[dict[str, str]] = {
    # Inpatient discharges with length of stay and whether the patient came back as an
    # inpatient within 30 days (the first inpatient start after this discharge, by ASOF).
    "agg_stays": (
        "WITH stays AS (SELECT patient_no, department_code, started_at, ended_at FROM visits "
        "WHERE encounter_type = 'inpatient' AND ended_at IS NOT NULL), "
        "starts AS (SELECT patient_no, started_at FROM visits "
        "WHERE encounter_type = 'inpatient') "
        "SELECT CAST(i.ended_at AS DATE) AS day, i.department_code, i.patient_no, "
        "epoch(i.ended_at - i.started_at) / 86400.0 AS stay_days, "
        "coalesce(n.started_at <= i.ended_at + INTERVAL 30 DAY, false) AS readmitted "
        "FROM stays i ASOF LEFT JOIN starts n "
        "ON n.patient_no = i.patient_no AND i.ended_at < n.started_at ORDER BY day"
    ),
    # Invoices still open (issued, partly paid): outstanding balance and AR aging.
    "agg_open_invoices": (
        "SELECT CAST(issued_at AS DATE) AS day, department_code, encounter_type, patient_no, "
        "patient_amount - paid_amount AS balance FROM invoices "
        f"WHERE status IN {OPEN_INVOICE!r} ORDER BY day"
    ),
    # Bookings by appointment day: wait (check-in to seen) and lead time precomputed.
    "agg_appointments": (
        "SELECT CAST(scheduled_at AS DATE) AS day, department_code, status, patient_no, "
        "date_diff('day', CAST(booked_at AS DATE), CAST(scheduled_at AS DATE)) AS lead_days, "
        "epoch(scheduled_at - booked_at) / 86400.0 AS lead_exact_days, "
        "epoch(seen_at - checked_in_at) AS wait_s FROM appointments ORDER BY day"
    ),
    # Primary diagnoses by day; descriptions live once per code.
    "agg_diagnoses": (
        "SELECT CAST(diagnosed_at AS DATE) AS day, department_code, encounter_type, code, "
        "patient_no FROM diagnoses WHERE rank = 'primary' ORDER BY day"
    ),
    "agg_diagnosis_codes": (
        "SELECT code, any_value(description ORDER BY description) AS description "
        "FROM diagnoses GROUP BY code"
    ),
}


def build_rollups(con: duckdb.DuckDBPyConnection) -> None:
    """Create (or replace) every derived table from the snapshot tables in ``con``."""
    for name, sql in ROLLUPS.items():
        con.execute(f"CREATE OR REPLACE TABLE {name} AS {sql}").fetchall()
