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
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb
from sqlalchemy.engine import make_url

from analytics.rollups import build_rollups
from analytics.tables import AGE_BANDS as AGE_BANDS  # re-exported: tests and pages use it
from analytics.tables import (
    BUILDS,
    FETCH_ORDER,
    LOOKUPS,
    MAPS,
    PARTITION_DATES,
    SOURCES,
    SPLIT,
)
from cims.config import get_settings

SNAPSHOT_FILE: Final = "snapshot.duckdb"
# Layout version: a snapshot of another format reads as "none yet" until rebuilt.
SNAPSHOT_FORMAT: Final = 2
PARQUET_DIR: Final = "parquet"
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


def _literal(value: str) -> str:
    """A SQL string literal (the zone and date come from settings, never from users)."""
    return "'" + value.replace("'", "''") + "'"


class _Fetcher:
    """Runs source queries on two PostgreSQL connections at once, in worker threads.

    PostgreSQL serialises one query on one core; two connections keep both cores busy
    while DuckDB (which releases the GIL) builds the tables already fetched.
    """

    def __init__(self, uri: str, zone: str, today: dt.date, workers: int = 2) -> None:
        self._uri = uri
        self._fill = {"zone": _literal(zone), "today": f"{_literal(today.isoformat())}::date"}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="snapshot")
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()

    def _cursor(self) -> Any:
        import adbc_driver_postgresql.dbapi as adbc

        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            connection = adbc.connect(self._uri)
            cursor = self._local.cursor = connection.cursor()
            with self._lock:
                self._connections.append((connection, cursor))
        return cursor

    def _run(self, sql: str) -> Any:
        cursor = self._cursor()
        cursor.execute(sql)
        return cursor.fetch_arrow_table()

    def submit(self, sql: str, part: str = "") -> Future[Any]:
        """Start one query; the future holds its rows as an Arrow table."""
        return self._pool.submit(self._run, sql.format(part=part, **self._fill))

    def halves(self, table: str) -> tuple[str, str]:
        """Two ctid ranges that split ``table``'s heap in the middle (TID range scans)."""
        arrow = self._run(
            f"SELECT (pg_relation_size('{table}') / current_setting('block_size')::int)::int8 "
            "AS pages"
        )
        middle = max(int(arrow.column("pages")[0].as_py()) // 2, 1)
        return f" AND ctid < '({middle},0)'::tid", f" AND ctid >= '({middle},0)'::tid"

    def close(self) -> None:
        """Stop the workers and close their connections."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        while self._connections:
            connection, cursor = self._connections.pop()
            cursor.close()
            connection.close()


def build_snapshot(
    url: str,
    *,
    folder: Path | None = None,
    parquet: bool = False,
    today: dt.date | None = None,
    progress: Progress | None = None,
) -> SnapshotInfo:
    """Copy the analytics tables, de-identified, into a new DuckDB file and swap it in."""
    from cims.clock import local_today

    started = time.perf_counter()
    folder = folder or snapshot_dir()
    zone = get_settings().timezone
    today = today or local_today()
    report = progress or (lambda _fraction, _step: None)
    with _build_lock(folder):
        building = folder / f".{SNAPSHOT_FILE}.{os.getpid()}.building"
        building.unlink(missing_ok=True)
        con = duckdb.connect(str(building))
        fetcher = _Fetcher(adbc_uri(url), zone, today)
        try:
            rows = _copy_tables(con, fetcher, report)
            fetcher.close()
            report(len(SOURCES) / (len(SOURCES) + 2), "rollups")
            build_rollups(con)
            _run(con, "DETACH stage")
            built_at = dt.datetime.now(dt.UTC)
            seconds = time.perf_counter() - started
            _run(con, "CREATE TABLE snapshot_info (key VARCHAR, value VARCHAR)")
            info = {"built_at": built_at.isoformat(), "timezone": zone, "today": str(today)}
            info |= {"format": str(SNAPSHOT_FORMAT)}
            info |= {f"rows.{t}": str(n) for t, n in rows.items()}
            info["build_seconds"] = f"{seconds:.3f}"
            con.executemany("INSERT INTO snapshot_info VALUES (?, ?)", list(info.items()))
            _run(con, "CHECKPOINT")
            if parquet:
                report((len(SOURCES) + 1) / (len(SOURCES) + 2), "parquet")
                _export_parquet(con, folder)
        except BaseException:
            fetcher.close()
            con.close()
            building.unlink(missing_ok=True)
            raise
        con.close()
        os.replace(building, folder / SNAPSHOT_FILE)
        report(1.0, "done")
    return SnapshotInfo(folder / SNAPSHOT_FILE, built_at, seconds, rows)


def _copy_tables(
    con: duckdb.DuckDBPyConnection, fetcher: _Fetcher, report: Progress
) -> dict[str, int]:
    """Fetch every source on two connections; build each table as soon as it and the
    maps it needs have arrived (patients and visits first: every other table needs them)."""
    inner, outer = _hmac_pads(pseudonym_key())
    pads = {"inner": inner, "outer": outer}
    _run(con, "ATTACH ':memory:' AS stage")
    halves = {table: fetcher.halves(table) for table in SPLIT}  # before the workers start
    lookups = {name: fetcher.submit(sql) for name, sql in LOOKUPS.items()}
    pending: dict[str, list[Future[Any]]] = {}
    for table in FETCH_ORDER:
        sql = SOURCES[table]
        parts = halves.get(table, ("",))
        pending[table] = [fetcher.submit(sql, part) for part in parts]
    for name, future in lookups.items():
        _stage(con, name, future.result())
    rows: dict[str, int] = {}
    for index, (table, futures) in enumerate(pending.items()):
        report(index / (len(SOURCES) + 2), table)
        for part, future in enumerate(futures):
            arrow = future.result()
            con.register("src", arrow)
            if table == "patients" and part == 0:
                keys = {
                    "patient": _pseudonym_sql("id", "patient"),
                    "doctor": _pseudonym_sql("id", "doctor"),
                }
                _run(con, f"CREATE TABLE stage.pmap AS {MAPS['pmap'].format(**keys)}", pads)
                _run(con, f"CREATE TABLE stage.dmap AS {MAPS['dmap'].format(**keys)}", pads)
            elif table == "departments":
                _run(con, "CREATE TABLE stage.departments AS SELECT * FROM src")
            elif table == "visits":
                _run(con, f"CREATE TABLE stage.visits AS {MAPS['visits']}")
                _run(con, f"CREATE TABLE stage.vmap AS {MAPS['vmap']}")
            if part == 0:
                _run(con, f"CREATE TABLE {table} AS {BUILDS[table]}")
            else:
                _run(con, f"INSERT INTO {table} {BUILDS[table]}")
            con.unregister("src")
            del arrow
        if table == "visits":
            _run(con, "DROP TABLE stage.visits")
        rows[table] = _count(con, table)
    return rows


def _stage(con: duckdb.DuckDBPyConnection, name: str, arrow: Any) -> None:
    """Keep a small lookup in the in-memory staging database."""
    con.register("src", arrow)
    _run(con, f"CREATE TABLE stage.{name} AS SELECT * FROM src")
    con.unregister("src")


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
    if values.get("format") != str(SNAPSHOT_FORMAT):
        return None  # an older layout: the dashboard needs a refresh first
    rows = {k.removeprefix("rows."): int(v) for k, v in values.items() if k.startswith("rows.")}
    return SnapshotInfo(
        path,
        dt.datetime.fromisoformat(values["built_at"]),
        float(values.get("build_seconds", 0)),
        rows,
    )


@contextmanager
def connect(
    path: Path | None = None, *, console: bool = False, threads: int = 1
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the snapshot; ``console`` also locks the configuration.

    The dashboard asks for one thread per query and runs its queries side by side: its
    queries read a few thousand row groups at most, and splitting each one over both
    cores costs more in coordination than it saves (worst on a busy machine).

    DuckDB shares one database instance per file within a process and refuses a second
    connection whose configuration differs ("Can't open a connection to same database
    file with a different configuration"), so every reader gets the same configuration:
    one thread and no outside doors (readers of the snapshot never need files or
    extensions). Two users opening the dashboard and the console at once then both work.
    """
    config: dict[str, Any] = {
        "threads": threads,
        "enable_external_access": False,
        "autoload_known_extensions": False,
    }
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
