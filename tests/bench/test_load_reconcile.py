"""bench/load.py on a small demo hospital: a short run reconciles clean; tampering is caught."""

from __future__ import annotations

import datetime as dt
import importlib.util
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import Engine, create_engine, text

from cims.base import utcnow

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def load() -> ModuleType:
    sys.path.insert(0, str(BENCH))  # load.py imports its neighbour _common
    spec = importlib.util.spec_from_file_location("bench_load", BENCH / "load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def engine(
    seeded_app_database: Callable[..., AbstractContextManager[str]],
) -> Iterator[Engine]:
    with seeded_app_database("loadbench", patients=600) as url:
        eng = create_engine(url, pool_size=5, max_overflow=0)
        yield eng
        eng.dispose()


def test_a_short_run_reconciles_and_every_kind_of_damage_is_counted(
    load: ModuleType, engine: Engine
) -> None:
    rng = random.Random(3)
    world = load._world(engine, rng)
    staff = load._staff(engine, 1, sorted(world.in_care))
    user_ids = [a.user_id for actors in staff.values() for a in actors]
    since = utcnow() - dt.timedelta(seconds=1)
    crews = [[staff[role][0]] for role in load.ROLES]
    book, _elapsed = load._phase(engine, crews, world, 3, 1)
    registrar, cashier = staff["registrar"][0], staff["finance"][0]
    for _ in range(30):  # make sure there is a booking and a payment to damage
        if not book.bookings:
            with suppress(load.Refused):
                load._book(engine, registrar, world, book, rng)
        if not book.payments:
            load._charge(engine, cashier, world, book, rng)
            load._invoice(engine, cashier, world, book, rng)
            if world.open_invoices:
                load._pay(engine, cashier, world, book, rng)
    assert book.bookings and book.payments
    assert not book.errors, book.errors

    def check() -> dict[str, int]:
        return dict(load.reconcile(engine, user_ids, since, book, world))

    clean = check()
    assert clean["lost_writes"] == 0 and clean["doubled_writes"] == 0
    assert clean["writes_checked"] == len(book.writes) > 0 and clean["reads_checked"] > 0

    # A write a worker saw succeed that the database lacks: the row and its audit row.
    book.writes.append(("charge", 10**12))
    assert check()["lost_writes"] == 2
    book.writes.pop()

    # A row the bench users wrote that no worker saw succeed.
    forgotten = next(w for w in book.writes if w[0] == "appointment")
    book.writes.remove(forgotten)
    assert check()["doubled_writes"] == 1
    book.writes.append(forgotten)

    # A payment answered under another id than the one recorded.
    key, (payment_id, invoice_id, amount) = next(iter(book.payments.items()))
    book.payments[key] = (payment_id + 10**9, invoice_id, amount)
    assert check()["doubled_writes"] == 1
    book.payments[key] = (payment_id, invoice_id, amount)

    # A slot whose count disagrees with its live appointments (the database's own check
    # already refuses a count above capacity).
    _appointment, slot_id = book.bookings[0]
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE slots SET booked_count = booked_count - 1 WHERE id = :s"), {"s": slot_id}
        )
    damaged = check()
    assert damaged["slot_count_mismatches"] == 1 and damaged["doubled_writes"] == 1
    assert check()["lost_writes"] == 0
    with engine.begin() as conn:  # repaired: a later run may book the place it freed
        conn.execute(
            text("UPDATE slots SET booked_count = booked_count + 1 WHERE id = :s"), {"s": slot_id}
        )


def test_staff_split_over_processes_send_back_every_write(load: ModuleType, engine: Engine) -> None:
    rng = random.Random(5)
    world = load._world(engine, rng)
    staff = load._staff(engine, 2, sorted(world.in_care))
    user_ids = [a.user_id for actors in staff.values() for a in actors]
    since = utcnow() - dt.timedelta(seconds=1)
    crews = [[staff[role][n]] for n in range(2) for role in load.ROLES]
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()  # the workers are forked: none inherits a pooled connection

    book, elapsed = load._phase_in_processes(url, crews, world, 3, 11, 0.0, 2)
    assert elapsed >= 3 and not book.errors, book.errors
    assert book.writes and sum(book.reads.values()) > 0
    # Every row the six users wrote, in either process, is in the merged ledger: a dropped
    # ledger would leave its rows and audit rows unaccounted for (doubled), its reads unmatched.
    checked = dict(load.reconcile(engine, user_ids, since, book, world))
    assert checked["lost_writes"] == 0 and checked["doubled_writes"] == 0, checked
    assert checked["writes_checked"] == len(book.writes)

    half = load.Ledger()  # one process's ledger alone does not reconcile
    half.writes = book.writes[::2]
    assert load.reconcile(engine, user_ids, since, half, world)["doubled_writes"] > 0


def test_each_process_pays_its_own_share_of_the_open_invoices(load: ModuleType) -> None:
    world = load.World(
        queries=["a"], in_care={1: [1]}, clinic_departments=[1], top_patient=9,
        open_invoices=[10, 11, 12, 13, 14], paid_before={i: i for i in range(10, 15)},
    )  # fmt: skip
    shares = [load._share(world, p, 2) for p in range(2)]
    assert [s.open_invoices for s in shares] == [[10, 12, 14], [11, 13]]
    assert shares[1].paid_before == {11: 11, 13: 13} and shares[0].queries == ["a"]
