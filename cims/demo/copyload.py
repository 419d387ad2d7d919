"""Bulk loading with PostgreSQL COPY: Arrow columns in, CSV streamed on a background thread.

Generation (numpy, main thread) and loading (PostgreSQL backend, fed by a writer thread) run
side by side, which keeps both cores of a small machine busy. For large loads the secondary
indexes and foreign keys of the loaded tables are dropped first and recreated afterwards from
their exact catalogue definitions — the way pg_restore loads data — because per-row index
maintenance and foreign-key triggers are most of COPY's cost. Everything happens inside the
caller's transaction, so a failure leaves the schema and the data as they were.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from numpy.typing import NDArray
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from cims.demo.vec import Clock, TimeArray

_CSV = pacsv.WriteOptions(include_header=False, quoting_style="needed", batch_size=8192)
_BATCH_ROWS = 100_000
_QUEUE_DEPTH = 1

Columns = dict[str, Any]


# --- Arrow column builders (CSV text: nulls are empty, strings are quoted) ---------------


def ints(values: NDArray[Any], mask: NDArray[np.bool_] | None = None) -> Any:
    """Integer column; ``mask`` marks NULLs."""
    return pa.array(np.asarray(values, np.int64), mask=mask)


def floats(values: NDArray[Any]) -> Any:
    """Float column (NaN → NULL)."""
    arr = np.asarray(values, np.float64)
    return pa.array(arr, mask=np.isnan(arr))


def bools(values: NDArray[Any]) -> Any:
    """Boolean column."""
    return pa.array(np.asarray(values, bool))


def decimals(
    scaled: NDArray[Any], precision: int, scale: int, mask: NDArray[np.bool_] | None = None
) -> Any:
    """NUMERIC column from integers already multiplied by 10**scale (exact, never float)."""
    v = np.asarray(scaled, np.int64)
    words = np.empty((len(v), 2), np.int64)
    words[:, 0] = v
    words[:, 1] = v >> 63  # sign-extend into the high 64 bits of the 128-bit decimal
    validity = None
    if mask is not None and mask.any():
        validity = pa.py_buffer(np.packbits(~mask, bitorder="little").tobytes())
    return pa.Array.from_buffers(
        pa.decimal128(precision, scale), len(v), [validity, pa.py_buffer(words.tobytes())]
    )


def money(cents: NDArray[Any]) -> Any:
    """NUMERIC(12,2) column from integer cents."""
    return decimals(cents, 12, 2)


def labels(codes: NDArray[Any], values: Sequence[str | None]) -> Any:
    """Text column as indexes into a small vocabulary (``None`` entries become NULL)."""
    index = np.asarray(codes, np.int32)
    vocab = list(values)
    nulls = np.array([v is None for v in vocab], bool)
    mask = nulls[index] if nulls.any() else None
    return pa.DictionaryArray.from_arrays(
        pa.array(index, mask=mask), pa.array([v or "" for v in vocab], pa.string())
    )


def texts(values: Sequence[str | None] | NDArray[Any]) -> Any:
    """Free text column (``None`` → NULL)."""
    return pa.array(list(values) if not isinstance(values, np.ndarray) else values, pa.string())


def hexes(blobs: Sequence[bytes | None]) -> Any:
    """bytea column in PostgreSQL hex input format."""
    return pa.array([None if b is None else "\\x" + b.hex() for b in blobs], pa.string())


def times(clock: Clock, local: TimeArray, mask: NDArray[np.bool_] | None = None) -> Any:
    """timestamptz column from hospital-local datetime64 values, written as UTC wall time.

    Written without a zone suffix (Arrow formats zoned timestamps ~25x slower); the loader
    sets the session time zone to UTC, so PostgreSQL reads them as UTC.
    """
    utc = clock.to_utc(local).astype("datetime64[s]")
    bad = np.isnat(utc)
    if mask is not None:
        bad = bad | mask
    return pa.array(utc.astype(np.int64), pa.int64(), mask=bad if bad.any() else None).cast(
        pa.timestamp("s")
    )


def dates(values: NDArray[Any], mask: NDArray[np.bool_] | None = None) -> Any:
    """date column from datetime64 values."""
    day = np.asarray(values).astype("datetime64[D]")
    bad = np.isnat(day)
    if mask is not None:
        bad = bad | mask
    return pa.array(day.astype(np.int64).astype(np.int32), pa.int32(), mask=bad).cast(pa.date32())


def const(value: Any, n: int) -> Any:
    """A column repeating one value (``None`` → all NULL)."""
    if value is None:
        return pa.nulls(n)
    return pa.repeat(pa.scalar(value), n)


def table(columns: Columns) -> Any:
    """Arrow table from column builders (every column the same length)."""
    return pa.table(columns)


# --- Loader ---------------------------------------------------------------------------------


class BulkLoader:
    """Streams Arrow tables into PostgreSQL tables with COPY on a writer thread."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        *,
        fast: bool,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self._conn = conn
        self._fast = fast
        self._say = progress or (lambda _msg: None)
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self._thread = threading.Thread(target=self._drain, name="cims-copy", daemon=True)
        self._error: BaseException | None = None
        self._tables: list[str] = []
        self._indexes: list[tuple[str, str]] = []
        self._foreign_keys: list[tuple[str, str, str]] = []
        self.counts: dict[str, int] = {}
        self.copy_seconds: dict[str, float] = {}
        self.wait_seconds = 0.0  # time the producer spent blocked on a busy writer
        self.restore_seconds: dict[str, float] = {}
        self.fk_seconds: dict[str, float] = {}
        self.index_seconds: dict[str, float] = {}

    @property
    def fast(self) -> bool:
        """Whether indexes and foreign keys are rebuilt after loading (so order is free)."""
        return self._fast

    def start(self, tables: Sequence[str]) -> None:
        """Prepare the target tables (detach indexes/FKs when fast) and start the writer."""
        self._tables = list(tables)
        with self._conn.cursor() as cur:
            cur.execute("SET LOCAL TIME ZONE 'UTC'")  # see ``times``: CSV timestamps are UTC
        if self._fast:
            self._detach()
        self._thread.start()

    def id_offsets(self, tables: Sequence[str]) -> dict[str, int]:
        """Current max(id) of each table, so pre-assigned ids never collide with rows."""
        out = {}
        with self._conn.cursor() as cur:
            for name in tables:
                cur.execute(
                    sql.SQL("SELECT coalesce(max(id), 0) FROM {}").format(sql.Identifier(name))
                )
                row = cur.fetchone()
                out[name] = int(row[0]) if row else 0
        return out

    def put(self, name: str, data: Any) -> None:
        """Queue one table's rows for COPY (blocks while the writer is busy)."""
        blocked = time.perf_counter()
        while True:
            self._raise_if_failed()
            try:
                self._queue.put((name, data), timeout=0.5)
                self.wait_seconds += time.perf_counter() - blocked
                return
            except queue.Full:
                continue

    def finish(self) -> dict[str, int]:
        """Wait for every COPY, restore indexes and FKs, reset identities; return row counts."""
        self._stop()
        self._raise_if_failed()
        spent = {"indexes": 0.0, "analyze": 0.0, "foreign keys": 0.0}
        with self._conn.cursor() as cur:
            if self._fast:
                cur.execute("SET LOCAL maintenance_work_mem = '1GB'")  # big index sorts in memory
                cur.execute("SET LOCAL work_mem = '64MB'")
                for name, definition in self._indexes:
                    tick = time.perf_counter()
                    cur.execute(definition)
                    took = time.perf_counter() - tick
                    spent["indexes"] += took
                    self.index_seconds[name] = took
            for name in self._tables:
                tick = time.perf_counter()
                cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
                spent["analyze"] += time.perf_counter() - tick
            if self._fast:
                for owner, constraint, definition in self._foreign_keys:
                    tick = time.perf_counter()
                    cur.execute(
                        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
                            sql.SQL(owner),  # regclass text is already quoted
                            sql.Identifier(constraint),
                        )
                        + sql.SQL(definition)
                    )
                    took = time.perf_counter() - tick
                    spent["foreign keys"] += took
                    self.fk_seconds[f"{owner}.{constraint}"] = took
            for name in self._tables:
                cur.execute(
                    sql.SQL(
                        "SELECT setval(pg_get_serial_sequence(%s, 'id'), "
                        "coalesce(max(id), 0) + 1, false) FROM {}"
                    ).format(sql.Identifier(name)),
                    (name,),
                )
        self.restore_seconds = {k: round(v, 2) for k, v in spent.items()}
        self._say(
            "restored " + ", ".join(f"{k} {v:.1f} s" for k, v in self.restore_seconds.items())
        )
        for label, spent_on in (("keys", self.fk_seconds), ("indexes", self.index_seconds)):
            slow = sorted(spent_on.items(), key=lambda kv: -kv[1])[:10]
            self._say(f"slowest {label}: " + ", ".join(f"{k} {v:.2f}" for k, v in slow))
        return dict(self.counts)

    def close(self) -> None:
        """Stop the writer without raising (used when generation itself failed)."""
        # The original error is the one worth reporting.
        with contextlib.suppress(Exception):
            self._stop()

    # -- internals --

    def _stop(self) -> None:
        if self._thread.is_alive():
            while True:
                try:
                    self._queue.put(None, timeout=0.5)
                    break
                except queue.Full:
                    if not self._thread.is_alive():
                        break
            self._thread.join()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"COPY failed: {self._error}") from self._error

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # keep draining so the producer never blocks forever
            name, data = item
            try:
                self._copy(name, data)
            except BaseException as exc:  # handed to the producer thread
                self._error = exc

    def _copy(self, name: str, data: Any) -> None:
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
            sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, data.column_names))
        )
        started = time.perf_counter()
        with self._conn.cursor() as cur, cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
            for batch in data.to_batches(max_chunksize=_BATCH_ROWS):
                sink = pa.BufferOutputStream()
                pacsv.write_csv(batch, sink, _CSV)
                copy.write(memoryview(sink.getvalue()))
        self.counts[name] = self.counts.get(name, 0) + data.num_rows
        spent = time.perf_counter() - started
        self.copy_seconds[name] = self.copy_seconds.get(name, 0.0) + spent

    def _detach(self) -> None:
        """Drop secondary indexes and outgoing foreign keys of the loaded tables (remembered)."""
        with self._conn.cursor() as cur:
            cur.execute(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
                "FROM pg_index i WHERE i.indrelid = ANY(%s::regclass[]) AND NOT EXISTS ("
                " SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid"
                " AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x'))"
                " ORDER BY 1",
                (self._tables,),
            )
            self._indexes = [(str(a), str(b)) for a, b in cur.fetchall()]
            cur.execute(
                "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) "
                "FROM pg_constraint c WHERE c.contype = 'f' AND c.conrelid = ANY(%s::regclass[])"
                " ORDER BY 1, 2",
                (self._tables,),
            )
            self._foreign_keys = [(str(a), str(b), str(c)) for a, b, c in cur.fetchall()]
            for owner, constraint, _ in self._foreign_keys:
                cur.execute(
                    sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                        sql.SQL(owner),  # regclass text is already quoted
                        sql.Identifier(constraint),
                    )
                )
            for index, _ in self._indexes:
                cur.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(index)))
