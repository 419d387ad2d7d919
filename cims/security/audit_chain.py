"""Tamper-evident audit trail: a hash chain over audit rows, a background sealer, anchors.

Writers only INSERT into ``audit_log`` (no lock, no hashing on a user's path). A sealer,
one at a time cluster-wide under an advisory lock, links committed rows into
``audit_seals`` in seal order: ``row_hash = sha256(prev_hash || canonical(row))``. The
sealed head is also anchored in files outside the database, so rewriting both tables and
recomputing the chain is caught. Design and restore rules: docs/audit.md.
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from cims.config import get_settings

log = logging.getLogger(__name__)

GENESIS = bytes(32)
RESTORE = "restore"
# Constant key for pg_try_advisory_xact_lock: one sealer at a time across all processes.
SEALER_LOCK_KEY = 0x43494D5341554454
# Every audit_log column, hashed in this (sorted) set. Adding a column to audit_log needs
# a decision here: old rows were hashed without it (a test compares this with the model).
CANONICAL_COLUMNS = (
    "id", "occurred_at", "actor_id", "actor_username", "actor_role", "action", "outcome",
    "patient_id", "object_type", "object_id", "detail", "client_address", "session_id",
)  # fmt: skip
# detail is read as PostgreSQL's jsonb text so numbers keep their exact digits.
_COLUMNS_SQL = ", ".join(
    "a.detail::text AS detail" if c == "detail" else f"a.{c}" for c in CANONICAL_COLUMNS
)
_UNSEALED = "NOT EXISTS (SELECT 1 FROM audit_seals s WHERE s.audit_id = a.id)"
_PENDING_ALL = text(
    f"SELECT {_COLUMNS_SQL} FROM audit_log a WHERE {_UNSEALED} ORDER BY a.id LIMIT :batch"
)
# Uses ix_audit_log_time; occurred_at is the writer's transaction start (now()).
_PENDING_RECENT = text(
    f"SELECT {_COLUMNS_SQL} FROM audit_log a "
    f"WHERE a.occurred_at >= now() - make_interval(secs => :since) AND {_UNSEALED} "
    "ORDER BY a.id LIMIT :batch"
)
_HEAD = text("SELECT seq, row_hash FROM audit_seals ORDER BY seq DESC LIMIT 1")
_INSERT_SEAL = text(
    "INSERT INTO audit_seals (seq, audit_id, prev_hash, row_hash) "
    "VALUES (:seq, :audit_id, :prev_hash, :row_hash)"
)
_WALK = text(
    f"SELECT s.seq, s.audit_id, s.prev_hash, s.row_hash, {_COLUMNS_SQL} "
    "FROM audit_seals s LEFT JOIN audit_log a ON a.id = s.audit_id ORDER BY s.seq"
).execution_options(yield_per=2000)
_UNSEALED_STATS = text(
    "SELECT count(*), EXTRACT(EPOCH FROM now() - min(a.occurred_at)) "
    f"FROM audit_log a WHERE {_UNSEALED}"
)


class _RawNumber(str):
    """A JSON number kept as the exact text PostgreSQL printed (no float rounding)."""


def _json(value: Any) -> str:
    """Stable JSON: sorted keys, no spaces, UTF-8 text, exact numbers."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, _RawNumber):
        return str(value)
    if isinstance(value, int | float):
        return json.dumps(value, allow_nan=False)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("audit times must be timezone-aware")
        return '"' + value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + '"'
    if isinstance(value, uuid.UUID):
        return '"' + str(value) + '"'
    if isinstance(value, Mapping):
        items = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(_json(k) + ":" + _json(v) for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json(v) for v in value) + "]"
    raise TypeError(f"cannot hash a {type(value).__name__} in an audit row")


def canonical_bytes(row: Mapping[Any, Any]) -> bytes:
    """Stable JSON of every audit column; ``detail`` given as jsonb text or parsed value."""
    values = {name: row[name] for name in CANONICAL_COLUMNS}
    if isinstance(values["detail"], str):
        values["detail"] = json.loads(values["detail"], parse_float=_RawNumber)
    return _json(values).encode("utf-8")


def hash_row(prev_hash: bytes, row: Mapping[Any, Any]) -> bytes:
    """``sha256(prev_hash || canonical(row))``: the link sealing one audit row."""
    return hashlib.sha256(prev_hash + canonical_bytes(row)).digest()


@contextmanager
def _transaction(bind: Engine | Connection) -> Iterator[Connection]:
    """A transaction on ``bind``; inside a caller's open transaction, the caller commits."""
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            yield conn
    elif bind.in_transaction():
        yield bind
    else:
        with bind.begin():
            yield bind


def chain_head(conn: Connection) -> tuple[int, bytes]:
    """(seq, row_hash) of the newest seal; (0, genesis) for an empty chain."""
    head = conn.execute(_HEAD).first()
    return (int(head[0]), bytes(head[1])) if head else (0, GENESIS)


def _seal_batch(conn: Connection, batch: int, since_seconds: float | None) -> int | None:
    """Seal up to ``batch`` rows; None when another sealer holds the lock."""
    if not conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SEALER_LOCK_KEY}):
        return None
    # Read under the lock: no other sealer can append until this transaction ends.
    seq, prev = chain_head(conn)
    if since_seconds is None:
        rows = conn.execute(_PENDING_ALL, {"batch": batch}).mappings().all()
    else:
        params = {"batch": batch, "since": float(since_seconds)}
        rows = conn.execute(_PENDING_RECENT, params).mappings().all()
    links = []
    for row in rows:
        seq += 1
        digest = hash_row(prev, row)
        links.append({"seq": seq, "audit_id": row["id"], "prev_hash": prev, "row_hash": digest})
        prev = digest
    if links:
        conn.execute(_INSERT_SEAL, links)
    return len(links)


def seal_pending(
    bind: Engine | Connection, *, batch: int = 5000, since_seconds: float | None = None
) -> int:
    """Seal committed, unsealed audit rows in order; returns rows sealed (0 if lock busy).

    The chain order is the seal ``seq``, not the audit id: a row whose transaction commits
    after higher ids were sealed is simply sealed by a later pass. ``since_seconds`` limits
    the pass to rows whose transaction started that recently (cheap, via the time index);
    None sweeps every row, which also catches transactions that stayed open longer.
    """
    total = 0
    while True:
        with _transaction(bind) as conn:
            sealed = _seal_batch(conn, batch, since_seconds)
        if sealed is None:
            return total
        total += sealed
        if sealed < batch:
            return total


# --- anchors outside the database -------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """One anchored chain head: ``{time, seq, head_hash_hex, reason}`` in a JSONL file."""

    time: str
    seq: int
    head_hash_hex: str
    reason: str
    source: str = ""


def default_anchor_dir(bind: Engine | Connection | None = None) -> Path:
    """Where anchors go unless told otherwise: ``<data_dir>/audit-anchors/<database>``.

    One folder per database, so the anchors of one chain are never checked against another
    (test and scratch databases share the server and the data folder).
    """
    root = get_settings().data_dir / "audit-anchors"
    if bind is None:
        return root
    url = bind.engine.url if isinstance(bind, Connection) else bind.url
    return root / (url.database or "default")


def anchor_head(
    bind: Engine | Connection,
    anchor_dir: Path | None = None,
    reason: str = "manual",
    *,
    seal_first: bool = True,
) -> Anchor:
    """Append the sealed head to ``<anchor_dir>/audit-anchor-YYYY-MM-DD.jsonl``.

    A "restore" anchor never seals first: it must pin exactly the head the backup held.
    """
    if seal_first and reason != RESTORE:
        seal_pending(bind)
    with _transaction(bind) as conn:
        seq, head = chain_head(conn)
    now = dt.datetime.now(dt.UTC)
    anchor = Anchor(now.isoformat(timespec="microseconds"), seq, head.hex(), reason)
    folder = anchor_dir or default_anchor_dir(bind)
    folder.mkdir(parents=True, exist_ok=True)
    line = dict(time=anchor.time, seq=seq, head_hash_hex=anchor.head_hash_hex, reason=reason)
    path = folder / f"audit-anchor-{now:%Y-%m-%d}.jsonl"
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())  # an anchor that is lost in a crash anchors nothing
    return anchor


def read_anchors(anchor_dir: Path) -> tuple[list[Anchor], list[str]]:
    """Every anchor in file-then-line order, and the lines that could not be read."""
    anchors: list[Anchor] = []
    errors: list[str] = []
    for path in sorted(anchor_dir.glob("audit-anchor-*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                data = json.loads(line)
                if len(bytes.fromhex(data["head_hash_hex"])) != len(GENESIS):
                    raise ValueError("not a sha256 hash")
                fields = (str(data["time"]), int(data["seq"]), str(data["head_hash_hex"]))
                anchors.append(Anchor(*fields, str(data["reason"]), where))
            except (ValueError, KeyError, TypeError):
                errors.append(where)
    return anchors, errors


# --- verification -----------------------------------------------------------------------


@dataclass
class VerifyResult:
    """Outcome of walking the chain: the first broken row, counts, warnings and notes."""

    ok: bool = True
    rows_checked: int = 0
    head_seq: int = 0
    head_hash: bytes = GENESIS
    first_broken_seq: int | None = None
    first_broken_audit_id: int | None = None
    reason: str | None = None
    detail: str | None = None
    problems: int = 0
    unsealed_rows: int = 0
    oldest_unsealed_seconds: float | None = None
    anchors_checked: int = 0
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, reason: str, seq: int | None, audit_id: int | None, detail: str) -> None:
        """Count a problem; the first one is kept as the reported broken row."""
        self.problems += 1
        if self.ok:
            self.ok = False
            self.reason, self.detail = reason, detail
            self.first_broken_seq, self.first_broken_audit_id = seq, audit_id


def _walk(conn: Connection, result: VerifyResult, wanted: set[int]) -> dict[int, bytes]:
    """Check every seal in seq order; return the stored hashes at the ``wanted`` seqs."""
    at: dict[int, bytes] = {0: GENESIS}
    expected, prev = 1, GENESIS
    for row in conn.execute(_WALK).mappings():
        seq, audit_id = int(row["seq"]), int(row["audit_id"])
        stored_prev, stored = bytes(row["prev_hash"]), bytes(row["row_hash"])
        if seq != expected:
            result.fail("gap in seq", seq, audit_id, f"expected seq {expected}, found {seq}")
        elif stored_prev != prev:
            result.fail("hash mismatch", seq, audit_id, "prev_hash is not the previous row_hash")
        elif row["id"] is None:
            result.fail("missing audit row", seq, audit_id, f"audit row {audit_id} is gone")
        elif hash_row(stored_prev, row) != stored:
            detail = f"audit row {audit_id} no longer matches its seal"
            result.fail("audit row altered", seq, audit_id, detail)
        if seq in wanted:
            at[seq] = stored
        # Continue from the stored hash so later rows are judged on their own links.
        expected, prev = seq + 1, stored
        result.rows_checked += 1
    result.head_seq, result.head_hash = expected - 1, prev
    return at


def _check_anchors(result: VerifyResult, anchors: list[Anchor], at: dict[int, bytes]) -> None:
    """Every anchored (seq, hash) must still be in the chain, unless a restore explains it."""
    restores = [i for i, a in enumerate(anchors) if a.reason == RESTORE]
    superseded = 0
    for i, anchor in enumerate(anchors):
        # A later restore went back to its seq: anchors beyond it were on a lost timeline.
        later = [anchors[j].seq for j in restores if j > i]
        if later and anchor.seq > min(later):
            superseded += 1
            continue
        result.anchors_checked += 1
        where = f"anchor {anchor.source} ({anchor.reason}, {anchor.time})"
        if anchor.seq > result.head_seq:
            result.fail(
                "anchored beyond head",
                anchor.seq,
                None,
                f"{where} holds seq {anchor.seq} but the chain ends at {result.head_seq}: "
                "truncated, or restored without a 'restore' anchor",
            )
        elif at.get(anchor.seq, b"").hex() != anchor.head_hash_hex.lower():
            result.fail(
                "anchor mismatch",
                anchor.seq,
                None,
                f"{where}: the chain's hash at seq {anchor.seq} differs "
                "(tables rewritten and the chain recomputed?)",
            )
    if superseded:
        result.notes.append(
            f"{superseded} anchor(s) beyond a later restore point are explained by the restore "
            "(rows sealed after that backup was taken were lost by the restore)"
        )


def verify_chain(
    bind: Engine | Connection,
    *,
    anchor_dir: Path | None = None,
    unsealed_warn_seconds: float = 60.0,
) -> VerifyResult:
    """Walk the whole chain (and the anchors in ``anchor_dir``, when given) in one snapshot."""
    result = VerifyResult()
    anchors: list[Anchor] = []
    if anchor_dir is not None:
        anchors, unreadable = read_anchors(anchor_dir)
        for where in unreadable:
            result.fail("anchor unreadable", None, None, f"cannot read anchor line {where}")
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            # One snapshot: the sealer may append while we walk.
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                _verify_on(conn, result, anchors, unsealed_warn_seconds)
    else:
        with _transaction(bind) as conn:
            _verify_on(conn, result, anchors, unsealed_warn_seconds)
    if anchor_dir is not None and not anchors and result.head_seq > 0:
        result.warnings.append(
            f"no anchors in {anchor_dir}: rewriting both tables would go unnoticed"
        )
    return result


def _verify_on(
    conn: Connection, result: VerifyResult, anchors: list[Anchor], warn_after: float
) -> None:
    at = _walk(conn, result, {a.seq for a in anchors})
    _check_anchors(result, anchors, at)
    count, oldest = conn.execute(_UNSEALED_STATS).one()
    result.unsealed_rows = int(count)
    result.oldest_unsealed_seconds = None if oldest is None else float(oldest)
    if count and oldest is not None and float(oldest) > warn_after:
        result.warnings.append(
            f"{count} audit row(s) not sealed yet, the oldest {float(oldest):.0f} s old "
            "(is a sealer running?)"
        )


# --- background sealer ------------------------------------------------------------------


@dataclass(eq=False)
class Sealer:
    """Daemon thread sealing every few seconds, sweeping fully now and then, anchoring."""

    engine: Engine
    interval_seconds: float = 2.0
    recent_seconds: float = 300.0  # a pass looks at rows whose transaction began this recently
    full_sweep_seconds: float = 300.0  # ...and every this often at all unsealed rows
    anchor_dir: Path | None = None  # None: default_anchor_dir(engine)
    anchor_every_seconds: float | None = 3600.0  # None: the sealer never anchors
    sealed_total: int = 0
    last_error: Exception | None = None
    _next_full: float = 0.0
    _next_anchor: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sealer:
        """Start the thread; returns self."""
        self._thread = threading.Thread(target=self._run, name="cims-audit-sealer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to finish its pass and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> int:
        """One pass (full sweep when due, anchor when due); errors are logged, not raised."""
        try:
            now = time.monotonic()
            full = now >= self._next_full
            sealed = seal_pending(self.engine, since_seconds=None if full else self.recent_seconds)
            if full:
                self._next_full = now + self.full_sweep_seconds
            self.sealed_total += sealed
            if self.anchor_every_seconds is not None and now >= self._next_anchor:
                anchor_head(self.engine, self.anchor_dir, "sealer", seal_first=False)
                self._next_anchor = now + self.anchor_every_seconds
            return sealed
        except Exception as exc:  # a database hiccup must not end sealing for the process
            log.exception("audit sealer pass failed")
            self.last_error = exc
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval_seconds)


def start_sealer(engine: Engine, interval_seconds: float = 2.0, **options: Any) -> Sealer:
    """Start a background sealer thread; several processes may each run one (advisory lock)."""
    return Sealer(engine, interval_seconds=interval_seconds, **options).start()


_process_sealer: Sealer | None = None
_process_lock = threading.Lock()


def ensure_sealer(engine: Engine, **options: Any) -> Sealer:
    """The one sealer of this process, started on first call (e.g. at app start)."""
    global _process_sealer
    with _process_lock:
        if _process_sealer is None:
            _process_sealer = start_sealer(engine, **options)
            # Registered after the database was reached, so it runs before the embedded
            # server's own exit hook stops PostgreSQL under a sealer still at work.
            atexit.register(_process_sealer.stop, 2.0)
        return _process_sealer
