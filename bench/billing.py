"""Cashier throughput: payments taken by 8 concurrent cashiers against a single connection.

On a fresh database (``cims_bench_billing`` on the configured server) with N issued invoices
per phase, each paid in instalments through ``take_payment`` (invoice row lock, idempotency
key, settlement share-lock, audit row, one transaction per payment). About one request in
ten is a retry of an earlier key (a double click or a network retry), sent from another
cashier so that retries race the originals.

- payments_per_s: distinct payments recorded per second by 8 cashier threads, each with its
  own connection; single_payments_per_s: the same work on other invoices, one connection in
  one loop; speedup_vs_single is their ratio (bounded by the machine's cores).
- lost / doubled: reconciled after the run from the database: a planned key with no payment
  is lost; a payment beyond the plan, or an invoice whose paid amount differs from the sum
  of its payments or from the plan, is doubled. Both must be 0.

Last stdout line is one JSON object.

    .venv/bin/python bench/billing.py [--invoices N] [--instalments K] [--cashiers C]
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import sys
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import fresh_database
from sqlalchemy import Engine, create_engine, func, insert, select
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.billing.catalogue import BillingRefused
from cims.billing.models import Invoice, Payment
from cims.billing.payments import take_payment
from cims.patients.models import Patient
from cims.patients.mrn import make_mrn
from cims.security.bootstrap import ensure_roles_and_privileges
from cims.security.models import User
from cims.security.rbac import ROLE_DEFAULTS, Actor

DATABASE = "cims_bench_billing"
INSTALMENT = Decimal("25.00")
RETRY_SHARE = 0.1


@dataclass(frozen=True)
class Request:
    """One payment request as a cashier sends it."""

    invoice_id: int
    key: str


def _engine(url: str, pool: int) -> Engine:
    return create_engine(
        url, pool_size=pool, max_overflow=0, connect_args={"options": "-c timezone=UTC"}
    )


def _cashiers(engine: Engine, count: int) -> list[Actor]:
    rows = [
        {
            "username": f"bench.cashier{n}",
            "display_name": f"Cashier {n}",
            "password_hash": "!bench-no-sign-in",
        }
        for n in range(count)
    ]
    with engine.begin() as conn:
        ids = conn.execute(insert(User).returning(User.id), rows).scalars().all()
    return [
        Actor(
            user_id=user_id,
            username=row["username"],
            display_name=row["display_name"],
            roles=("finance",),
            privileges=ROLE_DEFAULTS["finance"],
        )
        for user_id, row in zip(ids, rows, strict=True)
    ]


def _invoices(engine: Engine, count: int, instalments: int, offset: int) -> list[int]:
    """``count`` issued self-pay invoices, each owing ``instalments`` x 25.00."""
    due = INSTALMENT * instalments
    with engine.begin() as conn:
        patients = conn.execute(
            insert(Patient).returning(Patient.id),
            [
                {
                    "mrn": make_mrn(offset + n + 1),
                    "family_name": "张",
                    "given_name": "三",
                    "full_name": "张三",
                    "sex": "M",
                    "insurance_type": "self_pay",
                }
                for n in range(count)
            ],
        ).scalars()
        now = utcnow()
        return list(
            conn.execute(
                insert(Invoice).returning(Invoice.id),
                [
                    {
                        "invoice_no": f"BENCH{offset + n:09d}",
                        "patient_id": patient_id,
                        "status": "issued",
                        "issued_at": now,
                        "total_amount": due,
                        "insurance_amount": Decimal("0"),
                        "patient_amount": due,
                        "paid_amount": Decimal("0"),
                    }
                    for n, patient_id in enumerate(patients)
                ],
            ).scalars()
        )


def _plan(invoice_ids: list[int], instalments: int, rng: random.Random) -> list[Request]:
    """Every instalment once, plus retries of about a tenth of them, shuffled."""
    first = [Request(i, f"pay-{i}-{k}") for i in invoice_ids for k in range(instalments)]
    retries = rng.sample(first, int(len(first) * RETRY_SHARE))
    work = first + retries
    rng.shuffle(work)
    return work


def _pay(engine: Engine, cashier: Actor, request: Request) -> str:
    try:
        with Session(engine) as db, db.begin():
            take_payment(
                session=db,
                actor=cashier,
                invoice_id=request.invoice_id,
                amount=INSTALMENT,
                method="cash",
                idempotency_key=request.key,
            )
    except BillingRefused as refusal:
        return refusal.key
    return "ok"


def run_concurrent(engine: Engine, cashiers: list[Actor], work: list[Request]) -> tuple[float, int]:
    """Seconds for the cashier threads to send every request, and refusals seen."""
    todo: queue.SimpleQueue[Request] = queue.SimpleQueue()
    for request in work:
        todo.put(request)
    refused = [0] * len(cashiers)

    def cashier_loop(index: int) -> None:
        while True:
            try:
                request = todo.get_nowait()
            except queue.Empty:
                return
            if _pay(engine, cashiers[index], request) != "ok":
                refused[index] += 1

    threads = [threading.Thread(target=cashier_loop, args=(i,)) for i in range(len(cashiers))]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, sum(refused)


def run_single(engine: Engine, cashier: Actor, work: list[Request]) -> tuple[float, int]:
    """Seconds for one loop on one connection to send every request, and refusals seen."""
    refused = 0
    began = time.perf_counter()
    for request in work:
        refused += _pay(engine, cashier, request) != "ok"
    return time.perf_counter() - began, refused


def reconcile(engine: Engine, invoice_ids: list[int], work: list[Request]) -> tuple[int, int]:
    """(lost, doubled) from the database against the plan."""
    planned = {r.key for r in work}
    expected = {r.invoice_id: Decimal("0") for r in work}
    for key in planned:
        invoice_id = int(key.split("-")[1])
        expected[invoice_id] += INSTALMENT
    with Session(engine) as db:
        payments = db.execute(
            select(Payment.invoice_id, Payment.idempotency_key, Payment.amount).where(
                Payment.invoice_id.in_(invoice_ids)
            )
        ).all()
        paid = dict(
            db.execute(
                select(Invoice.id, Invoice.paid_amount).where(Invoice.id.in_(invoice_ids))
            ).all()
        )
    keys = [p.idempotency_key for p in payments]
    lost = len(planned - set(keys))
    doubled = len(keys) - len(set(keys)) + len(set(keys) - planned)
    summed: dict[int, Decimal] = {i: Decimal("0") for i in invoice_ids}
    for p in payments:
        summed[p.invoice_id] += p.amount
    doubled += sum(1 for i in invoice_ids if paid[i] != summed[i] or summed[i] > expected.get(i, 0))
    return lost, doubled


def main() -> None:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=250, help="invoices per phase")
    parser.add_argument("--instalments", type=int, default=4)
    parser.add_argument("--cashiers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    url = fresh_database(DATABASE)
    engine = _engine(url, pool=args.cashiers + 2)
    with Session(engine) as db, db.begin():
        ensure_roles_and_privileges(db)
    cashiers = _cashiers(engine, args.cashiers)
    many = _invoices(engine, args.invoices, args.instalments, offset=0)
    one = _invoices(engine, args.invoices, args.instalments, offset=args.invoices)
    many_work = _plan(many, args.instalments, rng)
    one_work = _plan(one, args.instalments, rng)

    single_engine = _engine(url, pool=1)
    single_s, single_refused = run_single(single_engine, cashiers[0], one_work)
    single_engine.dispose()
    many_s, many_refused = run_concurrent(engine, cashiers, many_work)

    lost_many, doubled_many = reconcile(engine, many, many_work)
    lost_one, doubled_one = reconcile(engine, one, one_work)
    with Session(engine) as db:
        total = db.scalar(select(func.count()).select_from(Payment)) or 0
    engine.dispose()
    distinct = len({r.key for r in many_work})
    single_distinct = len({r.key for r in one_work})
    per_s = distinct / many_s
    single_per_s = single_distinct / single_s
    result = {
        "bench": "billing",
        "invoices_per_phase": args.invoices,
        "cashiers": args.cashiers,
        "requests": len(many_work),
        "retried_requests": len(many_work) - distinct,
        "payments_recorded": total,
        "refused": many_refused + single_refused,
        "payments_per_s": round(per_s, 1),
        "single_payments_per_s": round(single_per_s, 1),
        "speedup_vs_single": round(per_s / single_per_s, 3),
        "lost": lost_many + lost_one,
        "doubled": doubled_many + doubled_one,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
