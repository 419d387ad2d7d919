"""The de-identified analytics snapshot: PostgreSQL -> Arrow (ADBC) -> a new DuckDB file.

Analytics never run on the live tables. A refresh reads the few columns the dashboards
need, drops every direct identifier on the way (no names, MRNs, national IDs, phones,
addresses, free text or database row ids), keys patients and doctors by a keyed HMAC
pseudonym, bands ages, and writes everything into a NEW DuckDB file that then replaces
the old one with an atomic rename: readers never see a half-built snapshot, and a
writer never locks them out.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import itertools
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb
from sqlalchemy.engine import make_url

from cims.config import get_settings

SNAPSHOT_FILE: Final = "snapshot.duckdb"
PARQUET_DIR: Final = "parquet"
# Age bands (lower bounds); a band is "lo-hi" or "80+".
AGE_BANDS: Final = (0, 18, 35, 50, 65, 80)
Progress = Callable[[float, str], None]


class SnapshotBusy(RuntimeError):
    """Another process is building the snapshot right now."""


@dataclass(frozen=True)
class SnapshotInfo:
    """Where the snapshot is, when it was built and how many rows each table holds."""

    path: Path
    built_at: dt.datetime
    seconds: float
    rows: dict[str, int]

    def age(self, now: dt.datetime | None = None) -> dt.timedelta:
        """How old the snapshot is."""
        return (now or dt.datetime.now(dt.UTC)) - self.built_at


def snapshot_dir() -> Path:
    """Folder of the snapshot (``CIMS_ANALYTICS_DIR``, else ``<data_dir>/analytics``)."""
    given = os.environ.get("CIMS_ANALYTICS_DIR")
    return Path(given) if given else get_settings().data_dir / "analytics"


def snapshot_path() -> Path:
    """The current snapshot file (it may not exist yet)."""
    return snapshot_dir() / SNAPSHOT_FILE


def pseudonym_key() -> bytes:
    """The key of the patient and doctor pseudonyms, derived from the blind-index key."""
    base = get_settings().key_bytes("blind_index_key")
    return hmac.new(base, b"analytics", hashlib.sha256).digest()


def pseudonym(kind: str, row_id: int, key: bytes | None = None) -> str:
    """Python twin of the SQL pseudonym (tests and support look-ups use it)."""
    message = f"{kind}:{row_id}".encode()
    return hmac.new(key or pseudonym_key(), message, hashlib.sha256).hexdigest()[:16]


def _hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer padded keys (RFC 2104)."""
    block = (
        key.ljust(64, b"\0") if len(key) <= 64 else hashlib.sha256(key).digest().ljust(64, b"\0")
    )
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def _pseudonym_sql(column: str, kind: str) -> str:
    """HMAC-SHA256 in DuckDB SQL over ``kind:<id>``; parameters: inner pad, outer pad."""
    message = f"('{kind}:' || CAST({column} AS VARCHAR))::BLOB"
    return f"substr(sha256($outer || unhex(sha256($inner || {message}))), 1, 16)"


def adbc_uri(url: str) -> str:
    """libpq URI of a SQLAlchemy PostgreSQL URL (for ADBC)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _age_band_sql() -> str:
    cases = []
    for low, high in itertools.pairwise(AGE_BANDS):
        cases.append(f"WHEN age < {high} THEN '{low}-{high - 1}'")
    return f"CASE WHEN age IS NULL THEN 'unknown' {' '.join(cases)} ELSE '{AGE_BANDS[-1]}+' END"


# Source queries: only the columns analytics need; times become hospital-local ($1 = zone).
# NUMERIC travels as text (ADBC would deliver an opaque string type) and is cast in DuckDB.
SOURCES: Final[dict[str, str]] = {
    "patients": (
        "SELECT id, sex, insurance_type, "
        "date_part('year', age($2::date, birth_date))::int AS age, "
        "date_trunc('month', registered_at AT TIME ZONE $1)::date AS registered_month "
        "FROM patients WHERE NOT voided AND merged_into_id IS NULL"
    ),
    "departments": "SELECT code, name_zh, name_en, kind FROM departments",
    "visits": (
        "SELECT e.id, e.patient_id, e.encounter_type, d.code AS department_code, "
        "e.attending_id AS doctor_id, e.started_at AT TIME ZONE $1 AS started_at, "
        "e.ended_at AT TIME ZONE $1 AS ended_at, e.disposition, e.status, "
        "e.appointment_id IS NOT NULL AS booked "
        "FROM encounters e JOIN departments d ON d.id = e.department_id WHERE NOT e.voided"
    ),
    "appointments": (
        "SELECT a.patient_id, d.code AS department_code, a.doctor_id, a.status, a.channel, "
        "a.booked_at AT TIME ZONE $1 AS booked_at, a.scheduled_at AT TIME ZONE $1 AS scheduled_at, "
        "a.checked_in_at AT TIME ZONE $1 AS checked_in_at, a.seen_at AT TIME ZONE $1 AS seen_at, "
        "a.cancelled_at AT TIME ZONE $1 AS cancelled_at "
        "FROM appointments a JOIN departments d ON d.id = a.department_id"
    ),
    "diagnoses": (
        "SELECT encounter_id, patient_id, code, description, rank, "
        "diagnosed_at AT TIME ZONE $1 AS diagnosed_at FROM diagnoses WHERE NOT voided"
    ),
    "charges": (
        "SELECT c.encounter_id, c.patient_id, p.category, c.source_type, c.service_date, "
        "c.amount::text AS amount, c.insurance_amount::text AS insurance_amount, "
        "c.patient_amount::text AS patient_amount "
        "FROM charges c JOIN price_items p ON p.id = c.price_item_id WHERE NOT c.voided"
    ),
    "invoices": (
        "SELECT encounter_id, patient_id, status, issued_at AT TIME ZONE $1 AS issued_at, "
        "due_date, total_amount::text AS total_amount, patient_amount::text AS patient_amount, "
        "paid_amount::text AS paid_amount FROM invoices WHERE NOT voided AND status <> 'void'"
    ),
    "payments": (
        "SELECT i.encounter_id, p.patient_id, p.method, p.status, "
        "p.amount::text AS amount, p.refunded_amount::text AS refunded_amount, "
        "p.received_at AT TIME ZONE $1 AS received_at "
        "FROM payments p JOIN invoices i ON i.id = p.invoice_id"
    ),
    "surveys": (
        "SELECT s.encounter_id, s.patient_id, d.code AS department_code, "
        "s.sent_at AT TIME ZONE $1 AS sent_at, s.completed_at AT TIME ZONE $1 AS completed_at, "
        "s.rating_waiting, s.rating_doctor, s.rating_environment, s.rating_billing, s.recommend "
        "FROM surveys s LEFT JOIN departments d ON d.id = s.department_id"
    ),
    # Each subject's newest score per model, with the department of the discharge or booking.
    "risk_scores": (
        "SELECT DISTINCT ON (r.subject_type, r.subject_id, mv.model_name) r.patient_id, "
        "mv.model_name, coalesce(de.code, da.code) AS department_code, r.score::text AS score, "
        "r.scored_at AT TIME ZONE $1 AS scored_at "
        "FROM risk_scores r JOIN model_versions mv ON mv.id = r.model_version_id "
        "LEFT JOIN encounters e ON r.subject_type = 'encounter' AND e.id = r.subject_id "
        "LEFT JOIN departments de ON de.id = e.department_id "
        "LEFT JOIN appointments a ON r.subject_type = 'appointment' AND a.id = r.subject_id "
        "LEFT JOIN departments da ON da.id = a.department_id "
        "ORDER BY r.subject_type, r.subject_id, mv.model_name, r.scored_at DESC"
    ),
}

_MONEY = "CAST({c} AS DECIMAL(12, 2)) AS {c}"


def _money(*columns: str) -> str:
    return ", ".join(_MONEY.format(c=c) for c in columns)


# How each staged source becomes a snapshot table (ids swapped for keys, money cast).
BUILDS: Final[dict[str, str]] = {
    "patients": (
        f"SELECT m.patient_key, s.sex, s.insurance_type, {_age_band_sql()} AS age_band, "
        "s.registered_month FROM src s JOIN pmap m USING (id)"
    ),
    "departments": "SELECT * FROM src",
    "visits": (
        "SELECT v.visit_key, m.patient_key, s.encounter_type, s.department_code, "
        "d.doctor_key, s.started_at, s.ended_at, s.disposition, s.status, s.booked "
        "FROM src s JOIN vmap v USING (id) JOIN pmap m ON m.id = s.patient_id "
        "LEFT JOIN dmap d ON d.id = s.doctor_id"
    ),
    "appointments": (
        "SELECT m.patient_key, s.department_code, d.doctor_key, s.status, s.channel, "
        "s.booked_at, s.scheduled_at, s.checked_in_at, s.seen_at, s.cancelled_at "
        "FROM src s JOIN pmap m ON m.id = s.patient_id LEFT JOIN dmap d ON d.id = s.doctor_id"
    ),
    "diagnoses": (
        "SELECT v.visit_key, m.patient_key, v.department_code, v.encounter_type, s.code, "
        "s.description, s.rank, s.diagnosed_at FROM src s JOIN pmap m ON m.id = s.patient_id "
        "LEFT JOIN vmap v ON v.id = s.encounter_id"
    ),
    "charges": (
        "SELECT v.visit_key, m.patient_key, v.department_code, v.encounter_type, "
        "m.insurance_type, s.category, s.source_type, s.service_date, "
        f"{_money('amount', 'insurance_amount', 'patient_amount')} "
        "FROM src s JOIN pmap m ON m.id = s.patient_id LEFT JOIN vmap v ON v.id = s.encounter_id"
    ),
    "invoices": (
        "SELECT v.visit_key, m.patient_key, v.department_code, v.encounter_type, s.status, "
        f"s.issued_at, s.due_date, {_money('total_amount', 'patient_amount', 'paid_amount')} "
        "FROM src s JOIN pmap m ON m.id = s.patient_id LEFT JOIN vmap v ON v.id = s.encounter_id"
    ),
    "payments": (
        "SELECT m.patient_key, v.department_code, v.encounter_type, s.method, s.status, "
        f"{_money('amount', 'refunded_amount')}, s.received_at "
        "FROM src s JOIN pmap m ON m.id = s.patient_id LEFT JOIN vmap v ON v.id = s.encounter_id"
    ),
    "surveys": (
        "SELECT m.patient_key, coalesce(s.department_code, v.department_code) AS department_code, "
        "v.encounter_type, s.sent_at, s.completed_at, s.rating_waiting, s.rating_doctor, "
        "s.rating_environment, s.rating_billing, s.recommend "
        "FROM src s JOIN pmap m ON m.id = s.patient_id LEFT JOIN vmap v ON v.id = s.encounter_id"
    ),
    "risk_scores": (
        "SELECT m.patient_key, s.model_name, s.department_code, "
        "CAST(s.score AS DOUBLE) AS score, s.scored_at "
        "FROM src s JOIN pmap m ON m.id = s.patient_id"
    ),
}
# Each table's date column for the partitioned Parquet export (by year).
PARTITION_DATES: Final[dict[str, str]] = {
    "visits": "started_at",
    "appointments": "scheduled_at",
    "diagnoses": "diagnosed_at",
    "charges": "service_date",
    "invoices": "issued_at",
    "payments": "received_at",
    "surveys": "sent_at",
    "risk_scores": "scored_at",
}
# Lookup tables kept only in memory (TEMP) while building: they hold the source row ids.
_MAPS: Final[dict[str, str]] = {
    "pmap": "SELECT id, {patient} AS patient_key, insurance_type FROM src",
    "vmap": (
        "SELECT id, row_number() OVER (ORDER BY started_at, id) AS visit_key, "
        "department_code, encounter_type FROM src"
    ),
}


@contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    """One builder at a time across processes (a non-blocking file lock)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".build.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SnapshotBusy("a snapshot refresh is already running") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fetch(cursor: Any, sql: str, zone: str, today: dt.date) -> Any:
    """Run one source query and return its rows as an Arrow table."""
    params: tuple[Any, ...] = (zone, today) if "$2" in sql else (zone,) if "$1" in sql else ()
    cursor.execute(sql, params or None)
    return cursor.fetch_arrow_table()


def build_snapshot(
    url: str,
    *,
    folder: Path | None = None,
    parquet: bool = False,
    today: dt.date | None = None,
    progress: Progress | None = None,
) -> SnapshotInfo:
    """Copy the analytics tables, de-identified, into a new DuckDB file and swap it in."""
    import adbc_driver_postgresql.dbapi as adbc

    from cims.clock import local_today

    started = time.perf_counter()
    folder = folder or snapshot_dir()
    zone = get_settings().timezone
    today = today or local_today()
    inner, outer = _hmac_pads(pseudonym_key())
    report = progress or (lambda _fraction, _step: None)
    with _build_lock(folder):
        building = folder / f".{SNAPSHOT_FILE}.{os.getpid()}.building"
        building.unlink(missing_ok=True)
        rows: dict[str, int] = {}
        con = duckdb.connect(str(building))
        try:
            _run(con, "SET preserve_insertion_order = false")
            with adbc.connect(adbc_uri(url)) as source:
                cursor = source.cursor()
                for index, (table, sql) in enumerate(SOURCES.items()):
                    report(index / (len(SOURCES) + 1), table)
                    arrow = _fetch(cursor, sql, zone, today)
                    con.register("src", arrow)
                    _make_maps(con, table, inner, outer, cursor, zone, today)
                    _run(con, f"CREATE TABLE {table} AS {BUILDS[table]}")
                    con.unregister("src")
                    del arrow
                    rows[table] = _count(con, table)
                cursor.close()
            built_at = dt.datetime.now(dt.UTC)
            seconds = time.perf_counter() - started
            _run(con, "CREATE TABLE snapshot_info (key VARCHAR, value VARCHAR)")
            info = {"built_at": built_at.isoformat(), "timezone": zone, "today": str(today)}
            info |= {f"rows.{t}": str(n) for t, n in rows.items()}
            info["build_seconds"] = f"{seconds:.3f}"
            con.executemany("INSERT INTO snapshot_info VALUES (?, ?)", list(info.items()))
            _run(con, "CHECKPOINT")
            if parquet:
                report(len(SOURCES) / (len(SOURCES) + 1), "parquet")
                _export_parquet(con, folder)
        except BaseException:
            con.close()
            building.unlink(missing_ok=True)
            raise
        con.close()
        os.replace(building, folder / SNAPSHOT_FILE)
        report(1.0, "done")
    return SnapshotInfo(folder / SNAPSHOT_FILE, built_at, seconds, rows)


def _make_maps(
    con: duckdb.DuckDBPyConnection,
    table: str,
    inner: bytes,
    outer: bytes,
    cursor: Any,
    zone: str,
    today: dt.date,
) -> None:
    """Build the in-memory id -> key maps when their source table is staged."""
    pads = {"inner": inner, "outer": outer}
    if table == "patients":
        sql = _MAPS["pmap"].format(patient=_pseudonym_sql("id", "patient"))
        _run(con, f"CREATE TEMP TABLE pmap AS {sql}", pads)
        # Doctors (staff accounts) get pseudonyms too: the snapshot holds no names at all.
        doctors = _fetch(cursor, "SELECT id FROM users", zone, today)
        con.register("src_doctors", doctors)
        key = _pseudonym_sql("id", "doctor")
        dmap = f"CREATE TEMP TABLE dmap AS SELECT id, {key} AS doctor_key FROM src_doctors"
        _run(con, dmap, pads)
        con.unregister("src_doctors")
    elif table == "visits":
        _run(con, f"CREATE TEMP TABLE vmap AS {_MAPS['vmap']}")


def _run(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[Any]:
    """Execute and drain (DuckDB 2 refuses other work while a result is unfinished)."""
    return con.execute(sql, params).fetchall()


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    [(count,)] = _run(con, f"SELECT count(*) FROM {table}")
    return int(count)


def _export_parquet(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    """Write every table as Parquet (dated tables partitioned by year), then swap it in."""
    target = folder / PARQUET_DIR
    building = folder / f".{PARQUET_DIR}.{os.getpid()}.building"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    for table in (*SOURCES, "snapshot_info"):
        column = PARTITION_DATES.get(table)
        if column:
            query = f"SELECT *, year({column}) AS year FROM {table}"
            _run(
                con,
                f"COPY ({query}) TO '{building / table}' "
                "(FORMAT parquet, PARTITION_BY (year), OVERWRITE_OR_IGNORE)",
            )
        else:
            _run(con, f"COPY {table} TO '{building / (table + '.parquet')}' (FORMAT parquet)")
    old = folder / f".{PARQUET_DIR}.{os.getpid()}.old"
    if target.exists():
        os.replace(target, old)
    os.replace(building, target)
    shutil.rmtree(old, ignore_errors=True)


def read_info(path: Path | None = None) -> SnapshotInfo | None:
    """The current snapshot's build time and row counts, or None when there is none yet."""
    path = path or snapshot_path()
    if not path.exists():
        return None
    with connect(path) as con:
        values = dict(con.execute("SELECT key, value FROM snapshot_info").fetchall())
    rows = {k.removeprefix("rows."): int(v) for k, v in values.items() if k.startswith("rows.")}
    return SnapshotInfo(
        path,
        dt.datetime.fromisoformat(values["built_at"]),
        float(values.get("build_seconds", 0)),
        rows,
    )


@contextmanager
def connect(
    path: Path | None = None, *, console: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the snapshot; ``console`` also shuts every outside door."""
    config: dict[str, Any] = {"threads": 2}
    if console:
        config |= {"enable_external_access": False, "autoload_known_extensions": False}
    con = duckdb.connect(str(path or snapshot_path()), read_only=True, config=config)
    try:
        if console:
            _run(con, "SET lock_configuration = true")
        yield con
    finally:
        con.close()


def snapshot_mtime(path: Path | None = None) -> float:
    """The snapshot file's modification time (0 when none): a cache key for pages."""
    try:
        return (path or snapshot_path()).stat().st_mtime
    except FileNotFoundError:
        return 0.0
