"""Analytics: snapshot refresh time and the manager dashboard, against two slower ways.

On a demo hospital of N patients (default 20,000; built once in ``cims_bench_analytics_N``
on the configured server and reused, state in var/bench/analytics/), it reports:

- full_refresh_s: the first refresh, a full copy: PostgreSQL -> Arrow (ADBC) -> a new
  de-identified DuckDB file, swapped in.
- refresh_s: the routine refresh after a day of hospital activity, which copies only what
  changed (see analytics.copying). The day: copies of the last day's visits, with their
  diagnoses and charges, moved a day on (new rows), and the last day's invoices, payments,
  appointments and surveys written again (changed rows); ``day_rows`` counts both. The
  new rows are deleted again at the end, so a rerun measures the same hospital.
- dashboard_warm_s: every dashboard query (12 KPIs for two periods and 11 charts) on the
  snapshot, median of 5 warm runs; queries_s: each query's share of one warm run.
- naive_s: the same figures the naive way, ``pandas.read_sql`` of the live tables then
  pandas; postgres_s: the same figures as SQL aggregates on the live tables (warm).
- speedup_vs_naive = naive_s / dashboard_warm_s; speedup_vs_postgres likewise.
- peak_rss_mb: the process's peak resident memory through the refresh and the dashboard
  (peak_rss_naive_mb: after the naive way too, which holds whole tables in pandas).
- refresh_cpu_s and loadavg: the refresh's CPU time (this process; PostgreSQL's backends
  are not counted) and the machine's load average, to read wall times on a shared machine.

Goals at 1,000,000 patients: dashboard <= 1 s warm, refresh <= 30 s, >= 5x the naive way.
The refresh goal is met by the routine refresh; a full copy (the first, and once a week)
is reported as full_refresh_s.
Last stdout line is one JSON object.

    .venv/bin/python bench/analytics.py [--patients N] [--days 90]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd
from _common import bench_url, fresh_database
from sqlalchemy import create_engine, text

from analytics.queries import CHARTS, Filters, dashboard_frames, kpis
from analytics.snapshot import build_snapshot, connect
from cims import migrate
from cims.config import PROJECT_ROOT, get_settings

STATE = PROJECT_ROOT / "var" / "bench" / "analytics"
TODAY = dt.date(2026, 11, 26)


# Another bench's demo hospital of the same size serves too (one 1M build is ~25 GB).
SHARED = ("cims_bench_search",)


def _patients_in(url: str) -> int:
    """Live patients in the database at ``url`` (0 when it is missing or empty)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM patients")).scalar() or 0)
    except Exception:  # no such database, or not migrated
        return 0
    finally:
        engine.dispose()


def _database(patients: int) -> str:
    """A seeded demo hospital of ``patients`` (ours or a shared one; built once, reused)."""
    name = f"cims_bench_analytics_{patients}"
    # The seed is one transaction: a database that holds the patients holds everything.
    # A reused one is brought to the current schema first (the refresh needs row_xid).
    for candidate in (name, *SHARED):
        if _patients_in(bench_url(candidate)) == patients:
            print(f"reusing {candidate} ({patients:,} patients)", file=sys.stderr)
            migrate.upgrade(bench_url(candidate))
            return bench_url(candidate)
    from cims.demo.seed import seed_demo

    url = fresh_database(name)
    engine = create_engine(url)
    print(f"seeding {patients:,} patients into {name} (once) ...", file=sys.stderr, flush=True)
    report = seed_demo(
        engine,
        patients=patients,
        seed=42,
        reference_date=TODAY,
        progress=lambda m: print(m, file=sys.stderr, flush=True),
    )
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    print(f"seeded {report.total_rows:,} rows in {report.seconds:.0f} s", file=sys.stderr)
    return url


def _columns(conn: Any, table: str, skip: tuple[str, ...] = ("id", "row_xid")) -> list[str]:
    rows = conn.execute(
        text(
            "SELECT column_name FROM information_schema.columns WHERE table_name = :t "
            "ORDER BY ordinal_position"
        ),
        {"t": table},
    )
    return [r[0] for r in rows if r[0] not in skip]


def _copy(conn: Any, table: str, where: str, **changes: str) -> int:
    """Insert copies of ``table``'s rows matching ``where`` (columns in ``changes`` set to
    SQL expressions); the number of rows."""
    columns = _columns(conn, table)
    values = ", ".join(changes.get(c, c) for c in columns)
    return int(
        conn.execute(
            text(
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"SELECT {values} FROM {table} WHERE {where}"
            )
        ).rowcount
    )


DAY_TOUCHED = {  # rows a day of work writes again: table -> (column of the day, SET)
    "invoices": ("issued_at", "status = status"),
    "payments": ("received_at", "status = status"),
    "appointments": ("scheduled_at", "status = status"),
    "surveys": ("sent_at", "recommend = recommend"),
}


def _one_day(url: str) -> tuple[dict[str, int], dict[str, int]]:
    """A day of activity after ``TODAY`` (see the module text); the rows written per table
    and the highest ids before it (to undo the new rows)."""
    lo, hi = f"'{TODAY - dt.timedelta(days=1)}'::timestamptz", f"'{TODAY}'::timestamptz"
    engine = create_engine(url)
    written: dict[str, int] = {}
    with engine.begin() as conn:
        marks = {
            t: int(conn.execute(text(f"SELECT coalesce(max(id), 0) FROM {t}")).scalar_one())
            for t in ("encounters", "diagnoses", "charges")
        }
        written["encounters"] = _copy(
            conn,
            "encounters",
            f"started_at >= {lo} AND started_at < {hi} AND NOT voided",
            started_at="started_at + interval '1 day'",
            ended_at="ended_at + interval '1 day'",
            appointment_id="NULL",
        )
        # Each copied visit's rows follow it: the copy is the visit with the same patient
        # and start a day later.
        conn.execute(
            text(
                "CREATE TEMP TABLE day_visits AS SELECT o.id AS old_id, n.id AS new_id "
                "FROM encounters n JOIN encounters o ON o.patient_id = n.patient_id "
                "AND o.started_at = n.started_at - interval '1 day' "
                f"AND o.id <= {marks['encounters']} WHERE n.id > {marks['encounters']}"
            )
        )
        new_visit = "(SELECT min(new_id) FROM day_visits WHERE old_id = encounter_id)"
        written["diagnoses"] = _copy(
            conn,
            "diagnoses",
            "encounter_id IN (SELECT old_id FROM day_visits) AND NOT voided",
            encounter_id=new_visit,
            diagnosed_at="diagnosed_at + interval '1 day'",
        )
        written["charges"] = _copy(
            conn,
            "charges",
            "encounter_id IN (SELECT old_id FROM day_visits) AND NOT voided",
            encounter_id=new_visit,
            service_date="service_date + 1",
            posted_at="posted_at + interval '1 day'",
            invoice_id="NULL",
        )
        for table, (column, change) in DAY_TOUCHED.items():
            written[table] = int(
                conn.execute(
                    text(f"UPDATE {table} SET {change} WHERE {column} >= {lo} AND {column} < {hi}")
                ).rowcount
            )
    engine.dispose()
    return written, marks


def _undo_day(url: str, marks: dict[str, int]) -> None:
    """Delete the day's new rows (its rewritten rows are unchanged in content). Nothing
    refers to them, so the foreign-key triggers are skipped: each deleted visit would
    otherwise look itself up in every table that can refer to a visit."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for table in ("charges", "diagnoses", "encounters"):
            conn.execute(text(f"DELETE FROM {table} WHERE id > {marks[table]}"))
    engine.dispose()


def _warm_dashboard(path: Path, filters: Filters) -> tuple[float, dict[str, float]]:
    """Median of 5 warm runs of the whole dashboard (as the page runs it: queries side by
    side, one thread each), and one run's time per query (one after the other)."""
    with connect(path, threads=1) as con:
        dashboard_frames(con, filters)  # warm-up
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            dashboard_frames(con, filters)
            runs.append(time.perf_counter() - started)
        each: dict[str, float] = {}
        started = time.perf_counter()
        kpis(con, filters)
        each["kpis"] = time.perf_counter() - started
        for name, query in CHARTS.items():
            started = time.perf_counter()
            query(con, filters)
            each[name] = round(time.perf_counter() - started, 4)
    each["kpis"] = round(each["kpis"], 4)
    return statistics.median(runs), each


# The same figures as SQL aggregates on the live tables (:lo/:hi current, :plo previous).
POSTGRES = [
    "SELECT count(*), count(*) FILTER (WHERE encounter_type = 'inpatient'), "
    "count(DISTINCT patient_id) FROM encounters WHERE NOT voided AND started_at >= {lo} "
    "AND started_at < {hi}",
    "SELECT sum(amount) FROM charges WHERE NOT voided AND service_date >= {lo}::date "
    "AND service_date < {hi}::date",
    "SELECT sum(amount - refunded_amount) FROM payments WHERE received_at >= {lo} "
    "AND received_at < {hi} AND status IN ('succeeded', 'refunded', 'partly_refunded')",
    "SELECT sum(patient_amount - paid_amount) FROM invoices WHERE NOT voided "
    "AND issued_at < {hi} AND status IN ('issued', 'partly_paid')",
    "SELECT avg(extract(epoch FROM seen_at - checked_in_at) / 60), "
    "avg(extract(epoch FROM scheduled_at - booked_at) / 86400) FILTER (WHERE status <> "
    "'cancelled'), count(*) FILTER (WHERE status = 'no_show'), count(*) FILTER (WHERE status "
    "IN ('seen', 'checked_in', 'no_show')) FROM appointments WHERE scheduled_at >= {lo} "
    "AND scheduled_at < {hi}",
    "SELECT avg(extract(epoch FROM ended_at - started_at) / 86400) FROM encounters "
    "WHERE NOT voided AND encounter_type = 'inpatient' AND ended_at >= {lo} AND ended_at < {hi}",
    "SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM encounters n WHERE "
    "n.patient_id = i.patient_id AND n.encounter_type = 'inpatient' AND NOT n.voided AND "
    "n.started_at > i.ended_at AND n.started_at <= i.ended_at + interval '30 days')) "
    "FROM encounters i WHERE NOT i.voided AND i.encounter_type = 'inpatient' "
    "AND i.ended_at >= {lo} AND i.ended_at < {hi}",
    "SELECT avg((coalesce(rating_waiting, 0) + coalesce(rating_doctor, 0) + "
    "coalesce(rating_environment, 0) + coalesce(rating_billing, 0))::numeric / 4), "
    "count(recommend), count(*) FILTER (WHERE recommend >= 9), count(*) FILTER "
    "(WHERE recommend <= 6) FROM surveys WHERE completed_at >= {lo} AND completed_at < {hi}",
]
POSTGRES_CHARTS = [
    "SELECT date_trunc('week', started_at), department_id, encounter_type, count(*), "
    "count(DISTINCT patient_id) FROM encounters WHERE NOT voided AND started_at >= {lo} "
    "AND started_at < {hi} GROUP BY 1, 2, 3",
    "SELECT attending_id, department_id, count(*), count(DISTINCT patient_id) FROM encounters "
    "WHERE NOT voided AND started_at >= {lo} AND started_at < {hi} GROUP BY 1, 2 "
    "ORDER BY 3 DESC LIMIT 25",
    "SELECT date_trunc('week', service_date), sum(amount), sum(insurance_amount), "
    "sum(patient_amount), count(DISTINCT patient_id) FROM charges WHERE NOT voided "
    "AND service_date >= {lo}::date AND service_date < {hi}::date GROUP BY 1",
    "SELECT p.insurance_type, sum(c.amount), count(DISTINCT c.patient_id) FROM charges c "
    "JOIN patients p ON p.id = c.patient_id WHERE NOT c.voided AND c.service_date >= {lo}::date "
    "AND c.service_date < {hi}::date GROUP BY 1",
    "SELECT width_bucket({hi}::date - issued_at::date, ARRAY[31, 61, 91]), "
    "sum(patient_amount - paid_amount), count(*), count(DISTINCT patient_id) FROM invoices "
    "WHERE NOT voided AND issued_at < {hi} AND status IN ('issued', 'partly_paid') GROUP BY 1",
    "SELECT least(floor(extract(epoch FROM seen_at - checked_in_at) / 600), 6), count(*), "
    "count(DISTINCT patient_id) FROM appointments WHERE scheduled_at >= {lo} "
    "AND scheduled_at < {hi} AND seen_at IS NOT NULL AND checked_in_at IS NOT NULL GROUP BY 1",
    "SELECT width_bucket(scheduled_at::date - booked_at::date, ARRAY[1, 3, 8, 15]), count(*), "
    "count(*) FILTER (WHERE status = 'no_show'), count(DISTINCT patient_id) FROM appointments "
    "WHERE scheduled_at >= {lo} AND scheduled_at < {hi} AND status IN ('seen', "
    "'checked_in', 'no_show') GROUP BY 1",
    "SELECT extract(isodow FROM scheduled_at), count(*), count(*) FILTER (WHERE status = "
    "'no_show'), count(DISTINCT patient_id) FROM appointments WHERE scheduled_at >= {lo} "
    "AND scheduled_at < {hi} AND status IN ('seen', 'checked_in', 'no_show') GROUP BY 1",
    "SELECT code, count(*), count(DISTINCT patient_id) FROM diagnoses WHERE NOT voided "
    "AND rank = 'primary' AND diagnosed_at >= {lo} AND diagnosed_at < {hi} GROUP BY 1 "
    "ORDER BY 2 DESC LIMIT 10",
    "SELECT extract(isodow FROM started_at), extract(hour FROM started_at), count(*), "
    "count(DISTINCT patient_id) FROM encounters WHERE NOT voided AND started_at >= {lo} "
    "AND started_at < {hi} GROUP BY 1, 2",
    "SELECT date_trunc('month', completed_at), department_id, count(*), "
    "count(DISTINCT patient_id) FROM surveys WHERE completed_at >= {lo} "
    "AND completed_at < {hi} GROUP BY 1, 2",
]


def _postgres(url: str, filters: Filters) -> float:
    """The dashboard as SQL on the live tables (second of two runs: warm cache)."""
    previous = filters.previous()
    bounds = {
        "lo": f"'{filters.start}'::timestamp",
        "hi": f"'{filters.end + dt.timedelta(days=1)}'::timestamp",
    }
    before = {
        "lo": f"'{previous.start}'::timestamp",
        "hi": f"'{previous.end + dt.timedelta(days=1)}'::timestamp",
    }
    statements = [q.format(**bounds) for q in POSTGRES]
    statements += [q.format(**before) for q in POSTGRES]
    statements += [q.format(**bounds) for q in POSTGRES_CHARTS]
    engine = create_engine(url)
    seconds = 0.0
    with engine.connect() as conn:
        for _ in range(2):
            started = time.perf_counter()
            for sql in statements:
                conn.execute(text(sql)).all()
            seconds = time.perf_counter() - started
    engine.dispose()
    return seconds


def _naive(url: str, filters: Filters) -> float:
    """``pandas.read_sql`` of the live tables, then every figure in pandas."""
    engine = create_engine(url)
    started = time.perf_counter()
    with engine.connect() as conn:
        visits = pd.read_sql(
            "SELECT patient_id, encounter_type, department_id, attending_id, started_at, "
            "ended_at FROM encounters WHERE NOT voided",
            conn,
        )
        appts = pd.read_sql(
            "SELECT patient_id, status, booked_at, scheduled_at, checked_in_at, seen_at "
            "FROM appointments",
            conn,
        )
        charges = pd.read_sql(
            "SELECT c.patient_id, c.service_date, c.amount, c.insurance_amount, "
            "c.patient_amount, p.insurance_type FROM charges c JOIN patients p "
            "ON p.id = c.patient_id WHERE NOT c.voided",
            conn,
        )
        pays = pd.read_sql(
            "SELECT status, amount, refunded_amount, received_at FROM payments", conn
        )
        invoices = pd.read_sql(
            "SELECT patient_id, status, issued_at, patient_amount, paid_amount FROM invoices "
            "WHERE NOT voided",
            conn,
        )
        surveys = pd.read_sql(
            "SELECT department_id, completed_at, rating_waiting, rating_doctor, "
            "rating_environment, rating_billing, recommend FROM surveys",
            conn,
        )
        diagnoses = pd.read_sql(
            "SELECT patient_id, code, rank, diagnosed_at FROM diagnoses WHERE NOT voided", conn
        )
    engine.dispose()
    for f in (filters, filters.previous()):
        lo = pd.Timestamp(f.start, tz="UTC")
        hi = pd.Timestamp(f.end + dt.timedelta(days=1), tz="UTC")
        v = visits[(visits.started_at >= lo) & (visits.started_at < hi)]
        _ = (len(v), (v.encounter_type == "inpatient").sum(), v.patient_id.nunique())
        sd = pd.to_datetime(charges.service_date).dt.tz_localize("UTC")
        c = charges[(sd >= lo) & (sd < hi)]
        _ = c.amount.astype(float).sum()
        p = pays[(pays.received_at >= lo) & (pays.received_at < hi)]
        p = p[p.status.isin(["succeeded", "refunded", "partly_refunded"])]
        _ = (p.amount.astype(float) - p.refunded_amount.astype(float)).sum()
        i = invoices[(invoices.issued_at < hi) & invoices.status.isin(["issued", "partly_paid"])]
        _ = (i.patient_amount.astype(float) - i.paid_amount.astype(float)).sum()
        a = appts[(appts.scheduled_at >= lo) & (appts.scheduled_at < hi)]
        _ = ((a.seen_at - a.checked_in_at).dt.total_seconds() / 60).mean()
        _ = (a.status == "no_show").sum() / max(1, a.status.isin(["seen", "no_show"]).sum())
        stays = visits[(visits.encounter_type == "inpatient") & visits.ended_at.notna()]
        s = stays[(stays.ended_at >= lo) & (stays.ended_at < hi)]
        _ = ((s.ended_at - s.started_at).dt.total_seconds() / 86400).mean()
        later = s[["patient_id", "ended_at"]].merge(
            stays[["patient_id", "started_at"]], on="patient_id"
        )
        gap = later.started_at - later.ended_at
        _ = ((gap > pd.Timedelta(0)) & (gap <= pd.Timedelta(days=30))).sum()
        sv = surveys[(surveys.completed_at >= lo) & (surveys.completed_at < hi)]
        _ = sv[["rating_waiting", "rating_doctor", "rating_environment", "rating_billing"]].mean()
    lo = pd.Timestamp(filters.start, tz="UTC")
    hi = pd.Timestamp(filters.end + dt.timedelta(days=1), tz="UTC")
    v = visits[(visits.started_at >= lo) & (visits.started_at < hi)].copy()
    v["week"] = v.started_at.dt.tz_localize(None).dt.to_period("W")
    v.groupby(["week", "department_id", "encounter_type"]).patient_id.agg(["count", "nunique"])
    v.groupby(["attending_id", "department_id"]).patient_id.agg(["count", "nunique"])
    v.groupby([v.started_at.dt.day_of_week, v.started_at.dt.hour]).patient_id.agg(
        ["count", "nunique"]
    )
    sd = pd.to_datetime(charges.service_date).dt.tz_localize("UTC")
    c = charges[(sd >= lo) & (sd < hi)].copy()
    c.groupby(pd.to_datetime(c.service_date).dt.to_period("W")).amount.count()
    c.groupby("insurance_type").patient_id.nunique()
    a = appts[(appts.scheduled_at >= lo) & (appts.scheduled_at < hi)]
    a.groupby(a.scheduled_at.dt.day_of_week).status.value_counts()
    d = diagnoses[(diagnoses.diagnosed_at >= lo) & (diagnoses.diagnosed_at < hi)]
    d[d["rank"] == "primary"].groupby("code").patient_id.agg(["count", "nunique"]).nlargest(
        10, "count"
    )
    sv = surveys[(surveys.completed_at >= lo) & (surveys.completed_at < hi)]
    sv.groupby(
        [sv.completed_at.dt.tz_localize(None).dt.to_period("M"), "department_id"]
    ).recommend.mean()
    return time.perf_counter() - started


def main() -> None:
    """Build (or reuse) the database, refresh, time the three ways, print the JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=90, help="Dashboard period length.")
    parser.add_argument("--prepare", action="store_true", help="Only build the database.")
    args = parser.parse_args()
    get_settings()
    url = _database(args.patients)
    if args.prepare:
        return
    folder = STATE / f"snapshot_{args.patients}"
    started, cpu = time.perf_counter(), time.process_time()
    info = build_snapshot(url, folder=folder, today=TODAY, full=True)
    full_s, full_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    loadavg = round(os.getloadavg()[0], 1)
    _say(f"full refresh {full_s:.1f} s (cpu {full_cpu_s:.1f} s, load {loadavg})")
    day, marks = _one_day(url)
    _say(f"a day of activity: {day}")
    try:
        started, cpu = time.perf_counter(), time.process_time()
        info = build_snapshot(url, folder=folder, today=TODAY)
        refresh_s, refresh_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    finally:
        _undo_day(url, marks)
    assert info.mode == "incremental", info.mode
    _say(f"refresh {refresh_s:.1f} s (cpu {refresh_cpu_s:.1f} s), rows {info.rows}")
    filters = Filters(TODAY - dt.timedelta(days=args.days - 1), TODAY)
    warm_s, each = _warm_dashboard(info.path, filters)
    _say(f"dashboard warm {warm_s:.3f} s: {each}")
    peak_rss_mb = _peak_rss_mb()
    postgres_s = _postgres(url, filters)
    _say(f"postgres {postgres_s:.1f} s")
    naive_s = _naive(url, filters)
    result: dict[str, Any] = {
        "bench": "analytics",
        "patients": args.patients,
        "rows": info.rows,
        "refresh_s": round(refresh_s, 3),
        "refresh_cpu_s": round(refresh_cpu_s, 3),
        "day_rows": sum(day.values()),
        "day_rows_by_table": day,
        "full_refresh_s": round(full_s, 3),
        "full_refresh_cpu_s": round(full_cpu_s, 3),
        "dashboard_warm_s": round(warm_s, 4),
        "queries_s": each,
        "naive_s": round(naive_s, 3),
        "postgres_s": round(postgres_s, 3),
        "speedup_vs_naive": round(naive_s / warm_s, 1),
        "speedup_vs_postgres": round(postgres_s / warm_s, 1),
        "peak_rss_mb": peak_rss_mb,
        "peak_rss_naive_mb": _peak_rss_mb(),
        "loadavg": [loadavg, round(os.getloadavg()[0], 1)],
    }
    print(json.dumps(result))


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


if __name__ == "__main__":
    main()
