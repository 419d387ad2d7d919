"""Audit hash chain: sealing order, append-only database rules, verify and anchors.

Each test that commits or tampers gets its own fresh database: triggers, advisory locks
and out-of-order commits need real transactions on several connections.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cims import db as cims_db
from cims.security import audit, audit_chain
from cims.security.audit_chain import GENESIS, canonical_bytes, hash_row, seal_pending
from cims.security.audit_cli import audit_app
from cims.security.models import AuditEvent, AuditSeal

_names = itertools.count()


def _engine(url: str) -> Engine:
    return create_engine(url, connect_args={"options": "-c timezone=UTC"})


@pytest.fixture
def chain_url(fresh_database: Callable[[str], str]) -> str:
    """A fresh, migrated database of its own."""
    return fresh_database(f"audit{next(_names)}")


@pytest.fixture
def db(chain_url: str) -> Iterator[Engine]:
    """Engine on the test's own database (connecting as the superuser that owns it)."""
    engine = _engine(chain_url)
    yield engine
    engine.dispose()


def _write(engine: Engine, count: int, **fields: Any) -> list[int]:
    """Commit ``count`` audit rows through the real writer; return their ids."""
    ids = []
    for n in range(count):
        with Session(engine) as session:
            audit.record(session, None, f"test.action{n}", username="alice", patient_id=n, **fields)
            session.commit()
            ids.append(int(session.scalars(text("SELECT max(id) FROM audit_log")).one()))
    return ids


def _seals(engine: Engine) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        return [
            (r[0], r[1])
            for r in conn.execute(text("SELECT seq, audit_id FROM audit_seals ORDER BY seq"))
        ]


def _as_superuser(engine: Engine, *statements: str, **params: Any) -> None:
    """Run statements with the append-only triggers switched off (what an intruder does)."""
    with engine.begin() as conn:
        for table in ("audit_log", "audit_seals"):
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        for statement in statements:
            conn.execute(text(statement), params)
        for table in ("audit_log", "audit_seals"):
            conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))


def _rewrite_and_recompute(engine: Engine, keep: str) -> None:
    """Truncate both tables, put back the rows matching ``keep``, seal a fresh chain."""
    with engine.connect() as conn:
        rows = [
            dict(r) for r in conn.execute(text(f"SELECT * FROM audit_log WHERE {keep}")).mappings()
        ]
    _as_superuser(engine, "TRUNCATE audit_log, audit_seals")
    with engine.begin() as conn:
        conn.execute(AuditEvent.__table__.insert(), rows)
    seal_pending(engine)


# --- canonical form ---------------------------------------------------------------------


def _row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(audit_chain.CANONICAL_COLUMNS)
    row.update(
        id=7, action="a", outcome="success", occurred_at=dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    )
    row.update(changes)
    return row


def test_canonical_form_is_stable_and_exact() -> None:
    shanghai = dt.timezone(dt.timedelta(hours=8))
    same_instant = dt.datetime(2026, 1, 2, 8, tzinfo=shanghai)
    assert canonical_bytes(_row()) == canonical_bytes(_row(occurred_at=same_instant))
    assert b'"occurred_at":"2026-01-02T00:00:00.000000Z"' in canonical_bytes(_row())
    assert canonical_bytes(_row(detail='{"b": 1, "a": [1, "x"]}')) == canonical_bytes(
        _row(detail={"a": [1, "x"], "b": 1})
    )
    # jsonb text keeps numeric digits: 1.10 and 1.1 are different stored values.
    assert canonical_bytes(_row(detail='{"x": 1.10}')) != canonical_bytes(_row(detail='{"x": 1.1}'))
    session = uuid.UUID(int=5)
    assert str(session).encode() in canonical_bytes(_row(session_id=session))
    digest = hash_row(GENESIS, _row())
    assert len(digest) == 32 and digest != hash_row(digest, _row())


def test_every_audit_column_is_hashed() -> None:
    assert set(audit_chain.CANONICAL_COLUMNS) == set(AuditEvent.__table__.columns.keys())


# --- sealing ----------------------------------------------------------------------------


def test_seals_rows_in_order_and_links_each_to_the_previous(db: Engine) -> None:
    ids = _write(db, 5, detail={"page": "chart", "n": 2.50}, client_address="10.0.0.7")
    assert seal_pending(db, batch=2) == 5  # three batches, three transactions
    assert seal_pending(db) == 0
    assert _seals(db) == [(n + 1, audit_id) for n, audit_id in enumerate(ids)]
    with db.connect() as conn:
        links = conn.execute(text("SELECT prev_hash, row_hash FROM audit_seals ORDER BY seq"))
        prev = GENESIS
        for stored_prev, stored in links:
            assert bytes(stored_prev) == prev
            prev = bytes(stored)
    result = audit_chain.verify_chain(db)
    assert result.ok and result.rows_checked == 5 and result.head_seq == 5
    assert result.head_hash == prev and result.unsealed_rows == 0


def test_a_row_committed_after_a_higher_id_was_sealed_is_sealed_later(db: Engine) -> None:
    with db.connect() as slow_conn, Session(slow_conn) as slow:
        audit.record(slow, None, "slow.read", username="bob")
        slow.flush()  # the id is drawn now, the commit comes later
        low_id = int(slow.scalars(text("SELECT max(id) FROM audit_log")).one())
        (high_id,) = _write(db, 1)
        assert high_id > low_id
        assert seal_pending(db, since_seconds=300) == 1
        assert _seals(db) == [(1, high_id)]
        slow.commit()
    assert seal_pending(db, since_seconds=300) == 1
    assert _seals(db) == [(1, high_id), (2, low_id)]
    assert audit_chain.verify_chain(db).ok


def test_full_sweep_seals_what_a_recent_pass_skips(db: Engine) -> None:
    # A transaction open longer than the recent window: its occurred_at is old.
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_log (action, outcome, occurred_at) "
                "VALUES ('long.txn', 'success', now() - interval '1 hour')"
            )
        )
    assert seal_pending(db, since_seconds=300) == 0
    warned = audit_chain.verify_chain(db)
    assert warned.ok and warned.unsealed_rows == 1 and "not sealed" in warned.warnings[0]
    assert seal_pending(db) == 1
    assert audit_chain.verify_chain(db).warnings == []


def test_only_one_sealer_runs_at_a_time(db: Engine) -> None:
    _write(db, 2)
    with db.connect() as other, other.begin():
        other.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": audit_chain.SEALER_LOCK_KEY})
        assert seal_pending(db) == 0
    assert seal_pending(db) == 2


def test_background_sealer_seals_within_seconds_and_anchors(db: Engine, tmp_path: Path) -> None:
    sealer = audit_chain.start_sealer(db, interval_seconds=0.1, anchor_dir=tmp_path)
    try:
        _write(db, 3)
        deadline = time.monotonic() + 5
        while len(_seals(db)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sealer.stop()
    assert len(_seals(db)) == 3 and sealer.last_error is None
    assert list(tmp_path.glob("audit-anchor-*.jsonl"))
    assert audit_chain.verify_chain(db, anchor_dir=tmp_path).ok


# --- the database refuses changes -------------------------------------------------------


@pytest.fixture(scope="module")
def sealed_db(fresh_database: Callable[[str], str]) -> Iterator[Engine]:
    """A database holding a few sealed rows, shared by the refusal tests (never changed)."""
    engine = _engine(fresh_database("audit_refusals"))
    _write(engine, 3)
    seal_pending(engine)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("table", ["audit_log", "audit_seals"])
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {table} SET {column} = {column}",
        "DELETE FROM {table}",
        "TRUNCATE {table}",
    ],
)
def test_update_delete_truncate_are_refused(sealed_db: Engine, table: str, statement: str) -> None:
    column = "action" if table == "audit_log" else "row_hash"
    with pytest.raises(DBAPIError, match="append-only"), sealed_db.begin() as conn:
        conn.execute(text(statement.format(table=table, column=column)))
    assert len(_seals(sealed_db)) == 3


def test_app_role_may_only_insert_and_select(sealed_db: Engine) -> None:
    with sealed_db.connect() as conn:
        for table in ("audit_log", "audit_seals"):
            for privilege, allowed in (
                ("SELECT", True),
                ("INSERT", True),
                ("UPDATE", False),
                ("DELETE", False),
                ("TRUNCATE", False),
            ):
                granted = conn.scalar(
                    text("SELECT has_table_privilege('cims_app', :t, :p)"),
                    {"t": table, "p": privilege},
                )
                assert granted is allowed, (table, privilege)
    with sealed_db.connect() as conn, conn.begin() as txn:
        conn.execute(text("SET LOCAL ROLE cims_app"))
        conn.execute(text("INSERT INTO audit_log (action, outcome) VALUES ('as.app', 'success')"))
        assert seal_pending(conn) == 1  # the sealer works with the app's rights
        with pytest.raises(DBAPIError, match="permission denied"), conn.begin_nested():
            conn.execute(text("UPDATE audit_log SET action = 'x'"))
        txn.rollback()


# --- verification -----------------------------------------------------------------------


def test_a_row_altered_by_a_superuser_is_found(db: Engine) -> None:
    ids = _write(db, 4)
    seal_pending(db)
    _as_superuser(db, "UPDATE audit_log SET actor_username = 'mallory' WHERE id = :id", id=ids[2])
    result = audit_chain.verify_chain(db)
    assert not result.ok and result.reason == "audit row altered"
    assert (result.first_broken_seq, result.first_broken_audit_id) == (3, ids[2])
    assert result.problems == 1


def test_deleted_rows_and_seals_are_found(db: Engine) -> None:
    ids = _write(db, 4)
    seal_pending(db)
    _as_superuser(db, "DELETE FROM audit_log WHERE id = :id", id=ids[1])
    missing = audit_chain.verify_chain(db)
    assert (missing.reason, missing.first_broken_seq, missing.first_broken_audit_id) == (
        "missing audit row",
        2,
        ids[1],
    )
    _as_superuser(db, "DELETE FROM audit_seals WHERE seq = 1")
    gap = audit_chain.verify_chain(db)
    assert (gap.reason, gap.first_broken_seq) == ("gap in seq", 2)


def test_a_row_and_its_recomputed_seal_break_the_next_link(db: Engine) -> None:
    ids = _write(db, 4, session_id=uuid.uuid4())
    seal_pending(db)
    _as_superuser(db, "UPDATE audit_log SET outcome = 'denied' WHERE id = :id", id=ids[1])
    columns = ", ".join(
        "detail::text AS detail" if c == "detail" else c for c in audit_chain.CANONICAL_COLUMNS
    )
    with db.connect() as conn:
        row = (
            conn.execute(text(f"SELECT {columns} FROM audit_log WHERE id = :id"), {"id": ids[1]})
            .mappings()
            .one()
        )
        prev = bytes(conn.scalar(text("SELECT prev_hash FROM audit_seals WHERE seq = 2")))
    _as_superuser(db, "UPDATE audit_seals SET row_hash = :h WHERE seq = 2", h=hash_row(prev, row))
    result = audit_chain.verify_chain(db)
    assert (result.reason, result.first_broken_seq, result.first_broken_audit_id) == (
        "hash mismatch",
        3,
        ids[2],
    )


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [("action <> 'test.action2'", "anchored beyond head"), ("true", "anchor mismatch")],
)
def test_truncate_and_recompute_is_caught_by_the_anchor(
    db: Engine, tmp_path: Path, tamper: str, reason: str
) -> None:
    _write(db, 5)
    anchor = audit_chain.anchor_head(db, tmp_path, "daily")
    assert anchor.seq == 5
    if tamper == "true":  # same rows, one quietly reworded before recomputing
        _as_superuser(
            db, "UPDATE audit_log SET actor_username = 'eve' WHERE action = 'test.action2'"
        )
    _rewrite_and_recompute(db, tamper)
    assert audit_chain.verify_chain(db).ok  # the chain alone looks fine...
    result = audit_chain.verify_chain(db, anchor_dir=tmp_path)  # ...the anchor does not
    assert not result.ok and result.reason == reason and result.first_broken_seq == 5


def test_a_restore_is_explained_by_its_anchor(db: Engine, tmp_path: Path) -> None:
    _write(db, 3)
    audit_chain.anchor_head(db, tmp_path, "backup")
    with db.connect() as conn:  # the backup
        backup_rows = [dict(r) for r in conn.execute(text("SELECT * FROM audit_log")).mappings()]
        backup_seals = [dict(r) for r in conn.execute(text("SELECT * FROM audit_seals")).mappings()]
    _write(db, 2)
    audit_chain.anchor_head(db, tmp_path, "daily")  # seq 5, lost by the restore below
    _as_superuser(db, "TRUNCATE audit_log, audit_seals")
    with db.begin() as conn:
        conn.execute(AuditEvent.__table__.insert(), backup_rows)
        conn.execute(AuditSeal.__table__.insert(), backup_seals)
    unexplained = audit_chain.verify_chain(db, anchor_dir=tmp_path)
    assert not unexplained.ok and unexplained.reason == "anchored beyond head"
    assert audit_chain.anchor_head(db, tmp_path, "restore").seq == 3
    _write(db, 3)  # new rows take seqs 4..6, which the lost timeline had anchored
    assert seal_pending(db) == 3
    result = audit_chain.verify_chain(db, anchor_dir=tmp_path)
    assert result.ok and result.head_seq == 6 and result.anchors_checked == 2
    assert "explained by the restore" in result.notes[0]


def test_unreadable_anchor_lines_fail_verification(db: Engine, tmp_path: Path) -> None:
    (tmp_path / "audit-anchor-2026-01-01.jsonl").write_text('{"seq": "x"}\n')
    result = audit_chain.verify_chain(db, anchor_dir=tmp_path)
    assert not result.ok and result.reason == "anchor unreadable"


# --- command line -----------------------------------------------------------------------


@pytest.fixture
def cli_env(chain_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the CLI's settings at the test database."""
    monkeypatch.setenv("CIMS_DATABASE_URL", chain_url)
    cims_db.reset_engine()
    yield chain_url
    monkeypatch.undo()
    cims_db.reset_engine()


def test_cli_seal_anchor_verify_exit_codes(cli_env: str, tmp_path: Path) -> None:
    engine = _engine(cli_env)
    try:
        ids = _write(engine, 3)
        runner = CliRunner()
        sealed = runner.invoke(audit_app, ["seal"])
        assert sealed.exit_code == 0 and "sealed 3 row(s)" in sealed.output
        anchored = runner.invoke(
            audit_app, ["anchor", "--reason", "backup", "--anchor-dir", str(tmp_path)]
        )
        assert anchored.exit_code == 0, anchored.output
        (line,) = (tmp_path / next(p.name for p in tmp_path.iterdir())).read_text().splitlines()
        assert json.loads(line)["seq"] == 3 and json.loads(line)["reason"] == "backup"
        intact = runner.invoke(audit_app, ["verify", "--anchor-dir", str(tmp_path)])
        assert intact.exit_code == 0 and "intact" in intact.output, intact.output
        _as_superuser(engine, "UPDATE audit_log SET action = 'x' WHERE id = :id", id=ids[1])
        broken = runner.invoke(audit_app, ["verify", "--anchor-dir", str(tmp_path)])
        assert broken.exit_code == 1
        assert f"seq 2 (audit id {ids[1]})" in broken.output
        assert "audit row altered" in broken.output
    finally:
        engine.dispose()
