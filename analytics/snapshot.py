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
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb
from sqlalchemy.engine import make_url

from analytics.copying import copy_all, copy_changes
from analytics.copying import run as _run
from analytics.rollups import build_rollups
from analytics.tables import AGE_BANDS as AGE_BANDS  # re-exported: tests and pages use it
from analytics.tables import PARTITION_DATES
from analytics.tables import SOURCES as SOURCES  # re-exported: the refresh page names steps
from cims.config import get_settings

SNAPSHOT_FILE: Final = "snapshot.duckdb"
# Layout version: a snapshot of another format reads as "none yet" until rebuilt.
SNAPSHOT_FORMAT: Final = 3
# The private state of the last refresh (source row id maps), beside the snapshot.
STATE_FILE: Final = ".state.duckdb"
# An incremental refresh builds on the last one; once a week a refresh copies everything
# again (its tables come back in date order, and it catches changes no row stamp shows,
# such as a price item's category).
FULL_EVERY: Final = dt.timedelta(days=7)
# The scheduled refresh writes the partitioned Parquet copy once a day.
PARQUET_EVERY: Final = dt.timedelta(days=1)
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
    mode: str = "full"  # or "incremental": only what changed since the last refresh
    full_built_at: dt.datetime | None = None  # the last full copy this one builds on

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

    def source(self) -> dict[str, str]:
        """Where the rows live: the database's oid and each copied table's file node
        (``tables``), and the next transaction id (``xmax``), for ``_last_refresh``."""
        names = ",".join(sorted({source.name for source in SOURCES.values()}))
        arrow = self._run(
            "SELECT (SELECT oid FROM pg_database WHERE datname = current_database())::text "
            "|| ':' || string_agg(t || '=' || coalesce(pg_relation_filenode(t::regclass), 0), "
            "',' ORDER BY t) AS tables, pg_snapshot_xmax(pg_current_snapshot())::text AS xmax "
            f"FROM unnest(string_to_array('{names}', ',')) t"
        )
        return {key: str(arrow.column(key)[0].as_py()) for key in ("tables", "xmax")}

    def pg_snapshot(self) -> str:
        """PostgreSQL's current snapshot (``pg_current_snapshot()``) as text."""
        arrow = self._run("SELECT pg_current_snapshot()::text AS now")
        return str(arrow.column("now")[0].as_py())

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
    full: bool | None = None,
) -> SnapshotInfo:
    """Bring the de-identified snapshot up to date in a new DuckDB file and swap it in.

    ``full`` None (the default) copies only what changed since the last refresh when the
    private state of that refresh matches the current snapshot and the last full copy is
    less than ``FULL_EVERY`` old; otherwise, or with ``full=True``, it copies everything.
    """
    from cims.clock import local_today

    started = time.perf_counter()
    folder = folder or snapshot_dir()
    zone = get_settings().timezone
    today = today or local_today()
    report = progress or (lambda _fraction, _step: None)
    with _build_lock(folder):
        fetcher = _Fetcher(adbc_uri(url), zone, today)
        try:
            source = fetcher.source()
            last = None if full else _last_refresh(folder, zone, source)
        except BaseException:
            fetcher.close()
            raise
        mode = "incremental" if last else "full"
        building = folder / f".{SNAPSHOT_FILE}.{os.getpid()}.building"
        state = folder / f".{STATE_FILE}.{os.getpid()}.building"
        for path in (building, state):
            path.unlink(missing_ok=True)
        con = None
        try:
            if last:
                shutil.copyfile(folder / SNAPSHOT_FILE, building)
                shutil.copyfile(folder / STATE_FILE, state)
            _private(state)
            con = duckdb.connect(str(building))
            _run(con, f"ATTACH {_literal(str(state))} AS stage")
            _private(state)
            inner, outer = _hmac_pads(pseudonym_key())
            pads = {"inner": inner, "outer": outer}
            keys = {
                "patient": _pseudonym_sql("id", "patient"),
                "doctor": _pseudonym_sql("id", "doctor"),
            }
            # Everything written before this point is in what the copy reads; the next
            # refresh reads what this snapshot cannot see.
            pg_snapshot = fetcher.pg_snapshot()
            if last:
                since = f"{_literal(last['pg_snapshot'])}::pg_snapshot"
                rows = copy_changes(con, fetcher, report, keys, pads, since)
            else:
                rows = copy_all(con, fetcher, report, keys, pads)
            fetcher.close()
            report(len(SOURCES) / (len(SOURCES) + 2), "rollups")
            build_rollups(con)
            built_at = dt.datetime.now(dt.UTC)
            build_id = uuid.uuid4().hex
            full_at = last["full_at"] if last else built_at.isoformat()
            meta = {"build_id": build_id, "pg_snapshot": pg_snapshot, "timezone": zone}
            meta |= {"source": source["tables"]}
            meta |= {"format": str(SNAPSHOT_FORMAT), "full_at": full_at}
            _run(con, "CREATE OR REPLACE TABLE stage.meta (key VARCHAR, value VARCHAR)")
            con.executemany("INSERT INTO stage.meta VALUES (?, ?)", list(meta.items()))
            _run(con, "DETACH stage")
            seconds = time.perf_counter() - started
            info = {"built_at": built_at.isoformat(), "timezone": zone, "today": str(today)}
            info |= {"format": str(SNAPSHOT_FORMAT), "build_id": build_id, "mode": mode}
            info |= {"full_built_at": full_at}
            info |= {f"rows.{t}": str(n) for t, n in rows.items()}
            info["build_seconds"] = f"{seconds:.3f}"
            _run(con, "CREATE OR REPLACE TABLE snapshot_info (key VARCHAR, value VARCHAR)")
            con.executemany("INSERT INTO snapshot_info VALUES (?, ?)", list(info.items()))
            _run(con, "CHECKPOINT")
            if parquet:
                report((len(SOURCES) + 1) / (len(SOURCES) + 2), "parquet")
                _export_parquet(con, folder)
        except BaseException:
            fetcher.close()
            if con is not None:
                con.close()
            building.unlink(missing_ok=True)
            state.unlink(missing_ok=True)
            raise
        con.close()
        # The state first: a crash between the two renames leaves a state that does not
        # match the snapshot (build ids differ), and the next refresh copies everything.
        os.replace(state, folder / STATE_FILE)
        os.replace(building, folder / SNAPSHOT_FILE)
        report(1.0, "done")
    full_built = dt.datetime.fromisoformat(full_at)
    return SnapshotInfo(folder / SNAPSHOT_FILE, built_at, seconds, rows, mode, full_built)


def _private(path: Path) -> None:
    """The state holds source row ids: readable by this account only."""
    if path.exists():
        path.chmod(0o600)


def _last_refresh(folder: Path, zone: str, source: dict[str, str]) -> dict[str, str] | None:
    """The last refresh's state when an incremental refresh can build on it, else None.

    It cannot after a restore or on another server: the tables' storage (``source``'s
    ``tables``: the database's oid and each table's file node, new after a restore, a
    TRUNCATE or a VACUUM FULL) must be the same, and the transaction counter must not have
    gone back (rows restored from elsewhere carry stamps that mean nothing here)."""
    snapshot, state = folder / SNAPSHOT_FILE, folder / STATE_FILE
    if not (snapshot.exists() and state.exists()):
        return None
    try:
        with connect(snapshot) as con:  # the readers' settings: the app may have it open
            info = dict(con.execute("SELECT key, value FROM snapshot_info").fetchall())
        with duckdb.connect(str(state), read_only=True) as con:
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    except duckdb.Error:
        return None  # unreadable or of an older layout: copy everything
    same = (
        meta.get("build_id") == info.get("build_id")
        and meta.get("format") == str(SNAPSHOT_FORMAT)
        and meta.get("timezone") == zone
    )
    if not same or "pg_snapshot" not in meta or meta.get("source") != source["tables"]:
        return None
    last_xmax = int(meta["pg_snapshot"].split(":")[1])
    if int(source["xmax"]) < last_xmax:
        return None
    full_at = dt.datetime.fromisoformat(meta["full_at"])
    if dt.datetime.now(dt.UTC) - full_at > FULL_EVERY:
        return None
    return meta


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
        values.get("mode", "full"),
        dt.datetime.fromisoformat(values["full_built_at"]) if "full_built_at" in values else None,
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


def parquet_age(now: dt.datetime | None = None, folder: Path | None = None) -> dt.timedelta:
    """How old the Parquet copy is (very old when there is none)."""
    try:
        written = (folder or snapshot_dir()) / PARQUET_DIR
        stamp = dt.datetime.fromtimestamp(written.stat().st_mtime, dt.UTC)
    except FileNotFoundError:
        return dt.timedelta.max
    return (now or dt.datetime.now(dt.UTC)) - stamp


def snapshot_mtime(path: Path | None = None) -> float:
    """The snapshot file's modification time (0 when none): a cache key for pages."""
    try:
        return (path or snapshot_path()).stat().st_mtime
    except FileNotFoundError:
        return 0.0
