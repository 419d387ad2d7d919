"""The app process is killed (SIGKILL) in the middle of a payment, a patient merge, a Synthea
import and a backup: nothing is half-applied, and a retry succeeds exactly once.

Each operation runs through the real service function in a child Python process. The test
holds an ACCESS EXCLUSIVE lock on a table the operation needs late (audit_log for the
payment and the merge, observations for the import, patients for pg_dump), waits until
pg_locks shows the child's backend waiting for it *after* its transaction has written
earlier rows, and kills the child. No hook is added to production code.

``test_an_import_killed_half_way_leaves_the_database_unchanged`` is the real-process proof
of issue 10's "an import killed half-way leaves the database unchanged";
tests/interop/test_synthea_import.py::test_a_failure_mid_import_leaves_nothing simulates
the failure with an exception and a savepoint inside one process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from fault_helpers import (
    Blocked,
    changed_tables,
    fingerprints,
    kill_and_reap,
    poll,
    reaped,
    start_child,
    wait_for_backend_gone,
    wait_until_blocked,
)
from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.orm import Session

import factories
from cims.billing.models import Invoice, Payment
from cims.billing.payments import take_payment
from cims.config import shared_data_dir
from cims.interop.synthea import import_synthea
from cims.ops.backup import SUFFIX, check_integrity, verify_backup
from cims.ops.backup_service import back_up_now
from cims.ops.backup_store import list_backups
from cims.patients.duplicates import merge_patients
from cims.patients.models import Patient, PatientMerge
from cims.patients.schemas import InvalidPatient
from cims.security.accounts import build_actor
from cims.security.audit_chain import seal_pending
from cims.security.models import AuditEvent, User
from cims.security.rbac import Actor

SAMPLE = shared_data_dir() / "synthea" / "sample_c"
IMPORT_TABLES = ("patients", "encounters", "diagnoses", "observations", "invoices",
                 "import_links", "import_runs")  # fmt: skip


@contextmanager
def watching(engine: Engine) -> Iterator[Connection]:
    """An autocommit connection to read pg_stat_activity and pg_locks with (never stale)."""
    with engine.connect() as watcher:
        yield watcher.execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def holding_lock(engine: Engine, table: str) -> Iterator[None]:
    """Hold ACCESS EXCLUSIVE on ``table`` until the block ends."""
    with engine.connect() as holder, holder.begin() as transaction:
        holder.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        yield
        transaction.rollback()


def _kill_while_blocked(
    engine: Engine, url: str, table: str, operation: str, args: dict[str, object], tag: str
) -> Blocked:
    """Start the child, kill it while it waits for ``table``, wait until its backend is gone."""
    with watching(engine) as watcher:
        with holding_lock(engine, table), reaped(start_child(operation, url, tag, args)) as child:
            blocked = wait_until_blocked(watcher, child, tag, table)
            kill_and_reap(child)
        wait_for_backend_gone(watcher, blocked.pid)
    return blocked


def _actor(session: Session, user_id: int) -> Actor:
    user = session.get(User, user_id)
    assert user is not None
    return build_actor(session, user)


def _audit_rows(engine: Engine, action: str, object_id: object | None = None) -> int:
    query = select(func.count(AuditEvent.id)).where(AuditEvent.action == action)
    if object_id is not None:
        query = query.where(AuditEvent.object_id == str(object_id))
    with Session(engine) as session:
        return session.scalar(query) or 0


def test_a_payment_killed_before_commit_leaves_no_trace_and_a_retry_pays_once(
    faults_database: tuple[str, Engine],
) -> None:
    url, engine = faults_database
    with Session(engine) as session, session.begin():
        invoice_id = factories.issued_invoice(session, amount="100.00")
        cashier_id = factories.user(session, "finance").id
    key = f"counter-{invoice_id}-1"
    before = fingerprints(url)

    blocked = _kill_while_blocked(
        engine, url, "audit_log", "pay",
        {"user_id": cashier_id, "invoice_id": invoice_id, "amount": "40.00", "key": key},
        "faults_pay",
    )  # fmt: skip
    # Killed at the audit insert: the payment row and the invoice update were already written.
    assert blocked.query.startswith("INSERT INTO audit_log")
    assert {"payments", "invoices"} <= blocked.written
    assert changed_tables(before, fingerprints(url)) == []
    with Session(engine) as session:
        assert session.scalar(select(Payment).where(Payment.idempotency_key == key)) is None
        assert session.get(Invoice, invoice_id).paid_amount == 0  # type: ignore[union-attr]

    # The cashier presses "pay" again (same idempotency key), and once more.
    paid = []
    for _ in range(2):
        with Session(engine) as session, session.begin():
            payment = take_payment(
                session=session, actor=_actor(session, cashier_id), invoice_id=invoice_id,
                amount=Decimal("40.00"), method="cash", idempotency_key=key,
            )  # fmt: skip
            paid.append(payment.id)
    assert paid[0] == paid[1]
    with Session(engine) as session:
        assert session.scalar(select(func.count()).where(Payment.idempotency_key == key)) == 1
        invoice = session.get(Invoice, invoice_id)
        assert invoice is not None and invoice.paid_amount == Decimal("40.00")
    assert _audit_rows(engine, "billing.take_payment", paid[0]) == 1


def test_a_merge_killed_before_commit_is_not_half_applied_and_a_retry_merges_once(
    faults_database: tuple[str, Engine],
) -> None:
    url, engine = faults_database
    with Session(engine) as session, session.begin():
        survivor = factories.patient(session, insurance_type="self_pay").id
        duplicate = factories.patient(session, insurance_type="self_pay").id
        invoice_id = factories.issued_invoice(session, amount="30.00", patient_id=duplicate)
        registrar_id = factories.user(session, "registrar").id
    before = fingerprints(url)

    blocked = _kill_while_blocked(
        engine, url, "audit_log", "merge",
        {"user_id": registrar_id, "survivor_id": survivor, "merged_id": duplicate},
        "faults_merge",
    )  # fmt: skip
    assert blocked.query.startswith("INSERT INTO audit_log")
    assert {"patient_merges", "patients", "invoices", "charges"} <= blocked.written
    assert changed_tables(before, fingerprints(url)) == []
    with Session(engine) as session:
        assert session.get(Patient, duplicate).merged_into_id is None  # type: ignore[union-attr]
        assert session.get(Invoice, invoice_id).patient_id == duplicate  # type: ignore[union-attr]

    with Session(engine) as session, session.begin():
        record = merge_patients(
            session=session, actor=_actor(session, registrar_id),
            survivor_id=survivor, merged_id=duplicate, reason="same person",
        )  # fmt: skip
        merge_id = record.id
    with Session(engine) as session, session.begin(), pytest.raises(InvalidPatient) as again:
        merge_patients(
            session=session, actor=_actor(session, registrar_id),
            survivor_id=survivor, merged_id=duplicate, reason="same person",
        )  # fmt: skip
    assert again.value.problems == ["patient.not_live"]
    with Session(engine) as session:
        merges = session.scalars(
            select(PatientMerge.id).where(PatientMerge.merged_id == duplicate)
        ).all()
        assert merges == [merge_id]
        assert session.get(Patient, duplicate).merged_into_id == survivor  # type: ignore[union-attr]
        assert session.get(Invoice, invoice_id).patient_id == survivor  # type: ignore[union-attr]
    assert _audit_rows(engine, "patients.merge", merge_id) == 2  # one per patient


def test_a_backup_killed_mid_write_lists_nothing_new_and_a_retry_backs_up_once(
    faults_database: tuple[str, Engine], backup_settings: dict[str, str]
) -> None:
    url, engine = faults_database
    env = backup_settings
    folder = Path(env["CIMS_BACKUP_DIR"])
    with Session(engine) as session, session.begin():
        admin_id = factories.user(session, "admin").id
        factories.patient(session)
    with Session(engine) as session, session.begin():
        earlier = back_up_now(session=session, actor=_actor(session, admin_id))
    seal_pending(engine)  # the backup seals the audit chain first: leave it nothing to seal
    before = fingerprints(url)
    backups_before = _audit_rows(engine, "backup.create")

    with watching(engine) as watcher:
        with holding_lock(engine, "patients"):
            child = start_child("backup", url, "faults_backup", {"user_id": admin_id}, env)
            with reaped(child):
                # pg_dump waits for the lock; the child has begun its *.partial file.
                blocked = wait_until_blocked(watcher, child, "pg_dump", "patients")
                poll(lambda: any(folder.glob("*.partial")), "the partial backup file")
                kill_and_reap(child)
        wait_for_backend_gone(watcher, blocked.pid)  # the orphaned pg_dump dies on its broken pipe

    [partial] = folder.glob("*.partial")
    assert [e.name for e in list_backups(folder)] == [earlier.path.name]
    assert not verify_backup(
        partial, private_key_path=Path(backup_settings["CIMS_BACKUP_PRIVATE_KEY"])
    ).ok
    assert check_integrity(earlier.path)[1] == []
    assert changed_tables(before, fingerprints(url)) == []
    assert _audit_rows(engine, "backup.create") == backups_before

    with Session(engine) as session, session.begin():
        retried = back_up_now(session=session, actor=_actor(session, admin_id))
    names = {e.name for e in list_backups(folder)}
    # Exactly one new backup (retention may drop the earlier one of the same day).
    assert retried.path.name in names and names - {earlier.path.name} == {retried.path.name}
    assert sorted(p.name for p in folder.glob(f"*{SUFFIX}")) == sorted(names)
    # Complete and sealed (the full restore drill is proved in tests/ops/test_backup.py).
    assert check_integrity(retried.path)[1] == []
    assert _audit_rows(engine, "backup.create") == backups_before + 1


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.scalar(text(f"SELECT count(*) FROM {t}")) or 0 for t in IMPORT_TABLES}


def test_an_import_killed_half_way_leaves_the_database_unchanged(
    faults_database: tuple[str, Engine],
) -> None:
    url, engine = faults_database
    with Session(engine) as session, session.begin():
        analyst_id = factories.user(session, "data_staff").id
    before = fingerprints(url)
    counts = _counts(engine)

    blocked = _kill_while_blocked(
        engine, url, "observations", "import",
        {"user_id": analyst_id, "folder": str(SAMPLE)}, "faults_import",
    )  # fmt: skip
    # Patients, encounters, diagnoses and their links were written before observations.
    assert {"patients", "encounters", "diagnoses", "import_links", "import_runs"} <= blocked.written
    assert changed_tables(before, fingerprints(url)) == []

    reports = []
    for _ in range(2):  # the retry, then the same export once more
        with Session(engine) as session, session.begin():
            reports.append(
                import_synthea(session=session, actor=_actor(session, analyst_id), folder=SAMPLE)
            )
    first, second = reports
    assert first.added["patients"] > 0 and first.added["observations"] > 4000
    assert second.rows_added == 0  # nothing doubled
    assert second.skipped["patients"] == first.added["patients"]
    after = _counts(engine)
    assert after["patients"] == counts["patients"] + first.added["patients"]
    assert after["observations"] == counts["observations"] + first.added["observations"]
    assert after["import_links"] > counts["import_links"]
    with Session(engine) as session:
        runs = session.execute(text("SELECT status FROM import_runs ORDER BY id")).scalars().all()
    assert runs == ["succeeded", "succeeded"]  # the killed run left no row at all
