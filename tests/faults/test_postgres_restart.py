"""PostgreSQL restarts under the running app: the next action succeeds after reconnecting,
and an action in flight at the restart is either wholly committed or not at all.

The server restarted here is a private throw-away cluster (pgserver's PostgreSQL 16 binaries,
its own data folder under var/faults/ and its own TCP port); the app side is the real one:
``cims.db.get_engine`` / ``session_scope`` pointed at it through CIMS_DATABASE_URL.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from fault_helpers import PrivateCluster, connect, poll, private_cluster
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

import factories
from cims import migrate
from cims.billing.models import Invoice, Payment
from cims.billing.payments import take_payment
from cims.db import ensure_database, reset_engine, session_scope
from cims.security.bootstrap import ensure_roles_and_privileges
from cims.security.models import AuditEvent
from cims.security.rbac import Actor

APP = "faults_restart_app"


@dataclass(frozen=True)
class RunningApp:
    """The private cluster, a cashier and an open invoice the app takes payments on."""

    cluster: PrivateCluster
    url: str
    cashier: Actor
    invoice_id: int


@pytest.fixture(scope="module")
def app() -> Iterator[RunningApp]:
    """The app's engine pointed at a private, migrated cluster that tests may restart."""
    with private_cluster("restart") as cluster:
        url = cluster.url("cims")
        ensure_database(url)
        migrate.upgrade(url)
        engine = create_engine(url)
        with Session(engine) as session, session.begin():
            ensure_roles_and_privileges(session)
            invoice_id = factories.issued_invoice(session, amount="5000.00")
            cashier = factories.actor(session, "finance")
        engine.dispose()
        previous = os.environ.get("CIMS_DATABASE_URL")
        os.environ["CIMS_DATABASE_URL"] = f"{url}?application_name={APP}"
        reset_engine()
        try:
            yield RunningApp(cluster, url, cashier, invoice_id)
        finally:
            reset_engine()
            if previous is None:
                os.environ.pop("CIMS_DATABASE_URL", None)
            else:
                os.environ["CIMS_DATABASE_URL"] = previous


def _pay(app: RunningApp, key: str, amount: str = "1.00") -> int:
    """One user action: a counter payment through the app's own session_scope."""
    with session_scope() as db:
        payment = take_payment(
            session=db, actor=app.cashier, invoice_id=app.invoice_id,
            amount=Decimal(amount), method="cash", idempotency_key=key,
        )  # fmt: skip
        return payment.id


@dataclass(frozen=True)
class Ledger:
    """What the database holds for a set of idempotency keys."""

    payments: dict[str, int]  # key -> payment id
    audited: dict[int, int]  # payment id -> audit rows
    paid_amount: Decimal
    paid_total: Decimal  # sum of every payment on the invoice


def _ledger(app: RunningApp, prefix: str) -> Ledger:
    engine = create_engine(app.url)
    try:
        with Session(engine) as session:
            found = session.execute(
                select(Payment.idempotency_key, Payment.id).where(
                    Payment.idempotency_key.startswith(prefix)
                )
            ).all()
            audited = dict(
                session.execute(
                    select(AuditEvent.object_id, func.count())
                    .where(AuditEvent.action == "billing.take_payment")
                    .group_by(AuditEvent.object_id)
                ).all()
            )
            invoice = session.get(Invoice, app.invoice_id)
            assert invoice is not None
            total = session.scalar(
                select(func.coalesce(func.sum(Payment.amount), 0)).where(
                    Payment.invoice_id == app.invoice_id
                )
            )
    finally:
        engine.dispose()
    payments = {key: pid for key, pid in found}
    return Ledger(
        payments,
        {pid: int(audited.get(str(pid), 0)) for pid in payments.values()},
        invoice.paid_amount,
        Decimal(total),
    )


def _consistent(ledger: Ledger) -> None:
    """Every payment has exactly one audit row and the invoice counts every payment once."""
    assert set(ledger.audited.values()) <= {1}, ledger.audited
    assert ledger.paid_amount == ledger.paid_total


def test_the_next_action_after_a_restart_succeeds(app: RunningApp) -> None:
    first = _pay(app, "restart-next-1")
    # A plain engine with a pooled connection, for comparison: the restart really cuts it.
    bare = create_engine(app.url, pool_size=1)
    with bare.connect() as conn:
        conn.execute(text("SELECT 1"))
    app.cluster.restart("fast")
    with pytest.raises(DBAPIError), bare.connect() as conn:
        conn.execute(text("SELECT 1"))
    bare.dispose()

    second = _pay(app, "restart-next-2")  # the app's engine checks its connections first
    assert second != first
    ledger = _ledger(app, "restart-next-")
    assert set(ledger.payments) == {"restart-next-1", "restart-next-2"}
    _consistent(ledger)


def test_an_action_blocked_at_the_restart_is_not_half_applied_and_retries_once(
    app: RunningApp,
) -> None:
    key = "restart-inflight"
    before = _ledger(app, "restart-")
    failure: list[BaseException] = []

    def action() -> None:
        try:
            _pay(app, key, "7.00")
        except BaseException as error:
            failure.append(error)

    lock, watch = connect(app.url), connect(app.url, autocommit=True)
    try:
        lock.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")
        worker = threading.Thread(target=action)
        worker.start()
        waiting = (
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
            "WHERE a.application_name = %s AND NOT l.granted "
            "AND l.relation = 'audit_log'::regclass"
        )
        poll(lambda: watch.execute(waiting, (APP,)).fetchone() != (0,), "the payment to block")
        # The payment row and the invoice update are written; the audit row waits. Restart.
        app.cluster.restart("fast")
        worker.join(60)
        assert not worker.is_alive()
    finally:
        lock.close()  # both died with the restart
        watch.close()

    assert len(failure) == 1 and isinstance(failure[0], DBAPIError), failure
    after = _ledger(app, "restart-")
    assert key not in after.payments
    assert after.paid_amount == before.paid_amount
    _consistent(after)

    retried = [_pay(app, key, "7.00") for _ in range(2)]
    assert retried[0] == retried[1]
    final = _ledger(app, "restart-")
    assert final.payments[key] == retried[0]
    assert final.paid_amount == before.paid_amount + Decimal("7.00")
    _consistent(final)


def test_a_stream_of_actions_through_a_crash_restart_is_all_or_nothing(app: RunningApp) -> None:
    """Payments keep coming while the server is killed (immediate stop) and started again.

    A call that failed may still have committed (the reply was lost): then its payment and
    audit row are both there, and the retry with the same key returns it instead of paying
    twice. Nothing is ever there without its audit row.
    """
    outcomes: dict[str, str] = {}
    errors: list[str] = []
    restarted = threading.Event()

    def stream() -> None:
        # After the restart the stream goes on until five payments in a row succeed (a busy
        # machine may need a few attempts while connections are re-made), or gives up.
        in_a_row, n = 0, 0
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            n += 1
            key = f"restart-stream-{n}"
            try:
                _pay(app, key)
                outcomes[key] = "ok"
                in_a_row += 1
            except DBAPIError as error:
                outcomes[key] = "failed"
                errors.append(type(error.orig).__name__)
                in_a_row = 0
            if restarted.is_set() and in_a_row >= 5:
                return
            if outcomes[key] == "failed":
                time.sleep(0.05)  # the server is down: try again shortly, as a cashier would

    before = _ledger(app, "restart-")
    worker = threading.Thread(target=stream)
    worker.start()
    poll(lambda: len(outcomes) >= 10, "payments before the restart")
    app.cluster.restart("immediate")
    restarted.set()
    worker.join(120)
    assert not worker.is_alive()

    ledger = _ledger(app, "restart-stream-")
    _consistent(ledger)
    ok = {key for key, outcome in outcomes.items() if outcome == "ok"}
    assert ok <= set(ledger.payments)  # every confirmed payment survived the crash
    assert set(ledger.payments) <= set(outcomes)
    last = max(outcomes, key=lambda k: int(k.rsplit("-", 1)[1]))
    assert outcomes[last] == "ok", errors
    for key in outcomes:  # the cashier retries whatever did not confirm
        _pay(app, key)
    final = _ledger(app, "restart-stream-")
    assert set(final.payments) == set(outcomes)
    assert set(final.audited.values()) == {1}
    assert final.paid_amount == before.paid_amount + Decimal(len(outcomes))
    _consistent(final)
