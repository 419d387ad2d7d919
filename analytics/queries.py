"""Dashboard queries over the snapshot: pure functions (connection, filters) -> DataFrame.

Every grouped result carries a ``patients`` column (distinct patients behind the row);
rows behind fewer than ``MIN_GROUP`` patients are suppressed (measures blanked, flagged)
before they leave this module, so a cached or exported frame never holds them.

Speed: visits, charges and payments are stored in time order and the ``agg_*`` tables
(analytics.rollups) are sorted by day, so a period's query reads that period's row
groups only; patients are counted by the integer ``patient_no``.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Final

import duckdb
import pandas as pd

MIN_GROUP: Final = 5
SUPPRESSED: Final = "<5"
# Numeric columns that name a group rather than measure it (never blanked).
DIMENSIONS: Final = frozenset({"weekday", "hour", "wait_min"})
VISIT_TYPES: Final = ("outpatient", "inpatient", "emergency")
COLLECTED: Final = ("succeeded", "refunded", "partly_refunded")
OPEN_INVOICE: Final = ("issued", "partly_paid")


@dataclass(frozen=True)
class Filters:
    """Date range (inclusive, hospital-local days), departments and visit types (empty: all)."""

    start: dt.date
    end: dt.date
    departments: tuple[str, ...] = ()
    visit_types: tuple[str, ...] = ()

    @property
    def days(self) -> int:
        """Length of the period in days."""
        return (self.end - self.start).days + 1

    def previous(self) -> Filters:
        """The period of the same length just before this one."""
        return replace(
            self,
            start=self.start - dt.timedelta(days=self.days),
            end=self.start - dt.timedelta(days=1),
        )

    @property
    def grain(self) -> str:
        """Time bucket of trend charts: day, week or month."""
        return "day" if self.days <= 62 else "week" if self.days <= 366 else "month"


def _bounds(filters: Filters) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(filters.start, dt.time())
    return start, dt.datetime.combine(filters.end + dt.timedelta(days=1), dt.time())


def _where(
    filters: Filters, column: str, *, types: bool = True, alias: str = "", since: bool = True
) -> tuple[str, list[Any]]:
    """WHERE clause and parameters: period on ``column`` (or only its end), departments,
    visit types. A ``day`` or ``*_date`` column is compared with dates, others with times."""
    prefix = f"{alias}." if alias else ""
    if column == "day" or column.endswith("_date"):
        start: Any = filters.start
        clauses: list[str] = [f"{prefix}{column} <= ?"]
        params: list[Any] = [filters.end]
    else:
        start, end = _bounds(filters)
        clauses, params = [f"{prefix}{column} < ?"], [end]
    if since:
        clauses.insert(0, f"{prefix}{column} >= ?")
        params.insert(0, start)
    if filters.departments:
        clauses.append(f"list_contains(?::VARCHAR[], {prefix}department_code)")
        params.append(list(filters.departments))
    if types and filters.visit_types:
        clauses.append(f"list_contains(?::VARCHAR[], {prefix}encounter_type)")
        params.append(list(filters.visit_types))
    return " AND ".join(clauses), params


def _appointments_where(filters: Filters) -> tuple[str, list[Any]]:
    """Appointments are outpatient bookings: a visit-type filter without it leaves none."""
    where, params = _where(filters, "day", types=False)
    if filters.visit_types and "outpatient" not in filters.visit_types:
        where += " AND false"
    return where, params


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> pd.DataFrame:
    return con.execute(sql, params).df()


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> float | None:
    rows = con.execute(sql, params).fetchall()
    value = rows[0][0] if rows else None
    return None if value is None else float(value)


def suppress(frame: pd.DataFrame, minimum: int = MIN_GROUP) -> pd.DataFrame:
    """Blank every measure of rows behind 1..minimum-1 patients and flag them."""
    out = frame.copy()
    small = (out["patients"] > 0) & (out["patients"] < minimum)
    out["suppressed"] = small
    measures = [c for c in out.columns if pd.api.types.is_numeric_dtype(out[c])]
    measures = [c for c in measures if c != "suppressed" and c not in DIMENSIONS]
    for column in measures:
        out[column] = out[column].astype("Float64")
        out.loc[small, column] = pd.NA
    return out


def display_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame for the screen or an export: suppressed patient counts read "<5"."""
    out = frame.copy()
    if "suppressed" in out.columns:
        flags = out.pop("suppressed").astype(bool)
        if "patients" in out.columns:
            texts = out["patients"].map(lambda v: "" if pd.isna(v) else f"{int(v)}")
            out["patients"] = texts.where(~flags, SUPPRESSED)
    return out


# --- KPI cards ----------------------------------------------------------------------------

KPI_NAMES: Final = (
    "visits",
    "admissions",
    "revenue",
    "collections",
    "outstanding",
    "avg_wait_min",
    "avg_lead_days",
    "no_show_rate",
    "alos_days",
    "readmission_rate",
    "satisfaction",
    "nps",
)


def _kpi_values(con: duckdb.DuckDBPyConnection, filters: Filters) -> dict[str, float | None]:
    """Every KPI of one period (None when there is nothing to measure)."""
    visits, vp = _where(filters, "started_at")
    values: dict[str, float | None] = {}
    row = con.execute(
        "SELECT count(*), count(*) FILTER (encounter_type = 'inpatient'), "
        f"count(DISTINCT patient_no) FROM visits WHERE {visits}",
        vp,
    ).fetchall()[0]
    values["visits"], values["admissions"], values["patients"] = map(float, row)
    charges, cp = _where(filters, "service_date")
    values["revenue"] = _scalar(con, f"SELECT sum(amount) FROM charges WHERE {charges}", cp) or 0.0
    pays, pp = _where(filters, "received_at")
    values["collections"] = (
        _scalar(
            con,
            "SELECT sum(amount - refunded_amount) FROM payments "
            f"WHERE {pays} AND list_contains(?::VARCHAR[], status)",
            [*pp, list(COLLECTED)],
        )
        or 0.0
    )
    # Open balance now of the invoices issued by the period's end.
    open_where, op = _where(filters, "day", since=False)
    values["outstanding"] = (
        _scalar(con, f"SELECT sum(balance) FROM agg_open_invoices WHERE {open_where}", op) or 0.0
    )
    appts, ap = _appointments_where(filters)
    waits = con.execute(
        "SELECT avg(wait_s / 60.0), avg(lead_exact_days) FILTER (status <> 'cancelled'), "
        "count(*) FILTER (status = 'no_show'), "
        "count(*) FILTER (status IN ('seen', 'checked_in', 'no_show')) "
        f"FROM agg_appointments WHERE {appts}",
        ap,
    ).fetchall()[0]
    values["avg_wait_min"] = None if waits[0] is None else float(waits[0])
    values["avg_lead_days"] = None if waits[1] is None else float(waits[1])
    values["no_show_rate"] = float(waits[2]) / waits[3] if waits[3] else None
    # Inpatient discharges of the period (any visit type filter aside) and readmissions.
    stays, sp = _where(replace(filters, visit_types=()), "day")
    stay = con.execute(
        "SELECT avg(stay_days), count(*), count(*) FILTER (readmitted) "
        f"FROM agg_stays WHERE {stays}",
        sp,
    ).fetchall()[0]
    values["alos_days"] = None if stay[0] is None else float(stay[0])
    values["readmission_rate"] = float(stay[2]) / stay[1] if stay[1] else None
    surveys, sv = _where(filters, "completed_at")
    score = con.execute(
        "SELECT avg(list_avg([rating_waiting, rating_doctor, rating_environment, "
        "rating_billing])), count(recommend), count(*) FILTER (recommend >= 9), "
        f"count(*) FILTER (recommend <= 6) FROM surveys WHERE {surveys}",
        sv,
    ).fetchall()[0]
    values["satisfaction"] = None if score[0] is None else float(score[0])
    values["nps"] = 100.0 * (score[2] - score[3]) / score[1] if score[1] else None
    return values


def kpis(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """KPI cards: value, previous period's value and relative change; small groups blanked."""
    now = _kpi_values(con, filters)
    before = _kpi_values(con, filters.previous())
    rows = []
    for name in KPI_NAMES:
        value, previous = now[name], before[name]
        change = value / previous - 1.0 if value is not None and previous else None
        rows.append({"kpi": name, "value": value, "previous": previous, "change": change})
    frame = pd.DataFrame(rows)
    frame["patients"] = now["patients"]
    return suppress(frame)


# --- Charts -------------------------------------------------------------------------------


def volume_trend(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Visits per time bucket, department and visit type."""
    where, params = _where(filters, "started_at")
    sql = (
        f"SELECT date_trunc('{filters.grain}', started_at)::DATE AS period, department_code, "
        "encounter_type, count(*) AS visits, count(DISTINCT patient_no) AS patients "
        f"FROM visits WHERE {where} GROUP BY ALL ORDER BY ALL"
    )
    return suppress(_frame(con, sql, params))


def doctor_workload(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Visits per (pseudonymous) doctor, busiest first."""
    where, params = _where(filters, "started_at")
    sql = (
        "SELECT doctor_key, department_code, count(*) AS visits, "
        "count(DISTINCT patient_no) AS patients FROM visits "
        f"WHERE {where} AND doctor_key IS NOT NULL GROUP BY ALL "
        "ORDER BY visits DESC, doctor_key, department_code LIMIT 25"
    )
    return suppress(_frame(con, sql, params))


def revenue_trend(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Charges per time bucket, split into insurance and patient shares."""
    where, params = _where(filters, "service_date")
    sql = (
        f"SELECT date_trunc('{filters.grain}', service_date)::DATE AS period, "
        "sum(amount)::DOUBLE AS revenue, sum(insurance_amount)::DOUBLE AS insurance, "
        "sum(patient_amount)::DOUBLE AS patient, count(DISTINCT patient_no) AS patients "
        f"FROM charges WHERE {where} GROUP BY ALL ORDER BY ALL"
    )
    return suppress(_frame(con, sql, params))


def payer_mix(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Charges by the patients' insurance type."""
    where, params = _where(filters, "service_date")
    sql = (
        "SELECT insurance_type, sum(amount)::DOUBLE AS revenue, "
        "count(DISTINCT patient_no) AS patients "
        f"FROM charges WHERE {where} GROUP BY ALL ORDER BY revenue DESC"
    )
    return suppress(_frame(con, sql, params))


AGING_BUCKETS: Final = ("0-30", "31-60", "61-90", "90+")


def ar_aging(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Open patient balances by days since the invoice was issued (at the period's end)."""
    where, params = _where(filters, "day", since=False)
    sql = (
        "SELECT CASE WHEN age <= 30 THEN '0-30' WHEN age <= 60 THEN '31-60' "
        "WHEN age <= 90 THEN '61-90' ELSE '90+' END AS bucket, "
        "sum(balance)::DOUBLE AS balance, count(*) AS invoices, "
        "count(DISTINCT patient_no) AS patients FROM ("
        "SELECT date_diff('day', day, ?::DATE) AS age, patient_no, balance "
        f"FROM agg_open_invoices WHERE {where}) GROUP BY ALL ORDER BY bucket"
    )
    return suppress(_frame(con, sql, [filters.end, *params]))


def wait_distribution(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Check-in to seen waits in 10-minute bins (the last bin is 60+)."""
    where, params = _appointments_where(filters)
    sql = (
        "SELECT least(floor(wait_s / 600), 6)::INT * 10 AS wait_min, "
        "count(*) AS appointments, count(DISTINCT patient_no) AS patients "
        f"FROM agg_appointments WHERE {where} AND wait_s IS NOT NULL "
        "GROUP BY ALL ORDER BY ALL"
    )
    return suppress(_frame(con, sql, params))


LEAD_BUCKETS: Final = ("0", "1-2", "3-7", "8-14", "15+")


def no_show_by_lead(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """No-show rate by days between booking and the appointment."""
    where, params = _appointments_where(filters)
    sql = (
        "SELECT CASE WHEN lead = 0 THEN '0' WHEN lead <= 2 THEN '1-2' WHEN lead <= 7 "
        "THEN '3-7' WHEN lead <= 14 THEN '8-14' ELSE '15+' END AS lead_days, "
        "count(*) AS appointments, count(*) FILTER (status = 'no_show') AS no_shows, "
        "count(*) FILTER (status = 'no_show') / count(*) AS no_show_rate, "
        "count(DISTINCT patient_no) AS patients FROM ("
        "SELECT lead_days AS lead, status, "
        f"patient_no FROM agg_appointments WHERE {where} "
        "AND status IN ('seen', 'checked_in', 'no_show')) GROUP BY ALL ORDER BY min(lead)"
    )
    return suppress(_frame(con, sql, params))


def no_show_by_weekday(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """No-show rate by weekday (1 = Monday)."""
    where, params = _appointments_where(filters)
    sql = (
        "SELECT isodow(day) AS weekday, count(*) AS appointments, "
        "count(*) FILTER (status = 'no_show') AS no_shows, "
        "count(*) FILTER (status = 'no_show') / count(*) AS no_show_rate, "
        "count(DISTINCT patient_no) AS patients FROM agg_appointments "
        f"WHERE {where} AND status IN ('seen', 'checked_in', 'no_show') "
        "GROUP BY ALL ORDER BY ALL"
    )
    return suppress(_frame(con, sql, params))


def top_diagnoses(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """The ten most frequent primary diagnoses."""
    where, params = _where(filters, "day")
    sql = (
        "SELECT code, description, diagnoses, patients FROM ("
        "SELECT code, count(*) AS diagnoses, count(DISTINCT patient_no) AS patients "
        f"FROM agg_diagnoses WHERE {where} GROUP BY code ORDER BY diagnoses DESC, code LIMIT 10"
        ") JOIN agg_diagnosis_codes USING (code) ORDER BY diagnoses DESC, code"
    )
    return suppress(_frame(con, sql, params))


def utilisation(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Visits by weekday (1 = Monday) and hour of arrival."""
    where, params = _where(filters, "started_at")
    sql = (
        "SELECT isodow(started_at) AS weekday, hour(started_at) AS hour, count(*) AS visits, "
        f"count(DISTINCT patient_no) AS patients FROM visits WHERE {where} "
        "GROUP BY ALL ORDER BY ALL"
    )
    return suppress(_frame(con, sql, params))


def satisfaction_trend(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Mean survey score (1-5) and NPS per month and department."""
    where, params = _where(filters, "completed_at")
    sql = (
        "SELECT date_trunc('month', completed_at)::DATE AS period, department_code, "
        "avg(list_avg([rating_waiting, rating_doctor, rating_environment, rating_billing])) "
        "AS score, 100.0 * (count(*) FILTER (recommend >= 9) - count(*) FILTER "
        "(recommend <= 6)) / nullif(count(recommend), 0) AS nps, count(*) AS responses, "
        f"count(DISTINCT patient_no) AS patients FROM surveys WHERE {where} "
        "GROUP BY ALL ORDER BY ALL"
    )
    return suppress(_frame(con, sql, params))


RISK_BANDS: Final = ((0.0, "<10%"), (0.1, "10–20%"), (0.2, "20–30%"), (0.3, "≥30%"))


def risk_by_department(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Patients per risk band, model and department, from the scores of the period."""
    known = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'risk_scores'"
    ).fetchall()
    if not known[0][0]:  # a snapshot built before risk scores were copied
        empty = ["model_name", "department_code", "band", "scores", "mean_score", "patients"]
        return suppress(pd.DataFrame(columns=empty))
    where, params = _where(filters, "scored_at", types=False)
    bands = " ".join(f"WHEN score >= {low} THEN '{label}'" for low, label in reversed(RISK_BANDS))
    sql = (
        f"SELECT model_name, department_code, CASE {bands} END AS band, count(*) AS scores, "
        "avg(score) AS mean_score, count(DISTINCT patient_no) AS patients FROM risk_scores "
        f"WHERE {where} GROUP BY ALL ORDER BY ALL"
    )
    return suppress(_frame(con, sql, params))


CHARTS: Final[dict[str, Callable[[duckdb.DuckDBPyConnection, Filters], pd.DataFrame]]] = {
    "volume": volume_trend,
    "workload": doctor_workload,
    "revenue": revenue_trend,
    "payer_mix": payer_mix,
    "ar_aging": ar_aging,
    "wait": wait_distribution,
    "no_show_lead": no_show_by_lead,
    "no_show_weekday": no_show_by_weekday,
    "diagnoses": top_diagnoses,
    "utilisation": utilisation,
    "satisfaction": satisfaction_trend,
    "risk": risk_by_department,
}


DASHBOARD_WORKERS: Final = 2


def dashboard_frames(
    con: duckdb.DuckDBPyConnection, filters: Filters, *, workers: int = DASHBOARD_WORKERS
) -> dict[str, pd.DataFrame]:
    """Everything the manager dashboard shows: the KPI cards and every chart's table.

    With ``workers`` > 1 the queries run side by side, each on its own cursor (DuckDB
    releases the GIL while it works); the KPIs, the longest job, start first.
    """
    jobs: dict[str, Callable[[duckdb.DuckDBPyConnection, Filters], pd.DataFrame]]
    jobs = {"kpis": kpis, **CHARTS}
    if workers <= 1:
        return {name: job(con, filters) for name, job in jobs.items()}
    local = threading.local()
    cursors: list[duckdb.DuckDBPyConnection] = []

    def run(job: Callable[[duckdb.DuckDBPyConnection, Filters], pd.DataFrame]) -> pd.DataFrame:
        cursor = getattr(local, "cursor", None)
        if cursor is None:
            cursor = local.cursor = con.cursor()
            cursors.append(cursor)
        return job(cursor, filters)

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {name: pool.submit(run, job) for name, job in jobs.items()}
            return {name: future.result() for name, future in futures.items()}
    finally:
        for cursor in cursors:
            cursor.close()


def departments(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Department codes and names (for the filter)."""
    return con.execute(
        "SELECT code, name_zh, name_en FROM departments WHERE kind = 'clinical' ORDER BY code"
    ).df()
