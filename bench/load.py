"""Load: N simulated staff working the demo hospital at once, then every write reconciled.

The demo hospital (``cims.demo.seed.seed_demo``, default 100,000 patients) is built once
into ``cims_bench_load_<P>`` on the configured server and reused; what was built is kept in
var/bench/load/state.json. Each simulated member of staff is a thread with a real user row
(``bench.load.<role>NN``, role doctor, registrar or finance, doctors in a clinic department)
that opens its own SQLAlchemy session per action — one transaction per action, as a page
does — and calls the same service functions the pages call:

- doctor:    search (``search_patients``) 30 %, summary (``build_summary``, a patient in the
             doctor's care) 70 %
- registrar: search 40 %, register (``register_patient``; a look-alike warning is
             confirmed, as "register anyway" does) 20 %, book (``list_open_slots`` then
             ``book_appointment`` in one of the five earliest slots of a day, so desks race
             for places) 40 %
- finance:   search 20 %, charge (``post_charge``, a manual item) 30 %, invoice
             (``create_invoice`` + ``issue_invoice``) 10 %, pay (``take_payment`` of 10.00 on an
             open invoice; one in ten resends an earlier key, as a double click does) 40 %

Staff are a third of each role. Each pauses a random time after every action, averaging
``--think-s`` (default 2 s: a person at a desk reads the screen and types; real staff pause
far longer), and the goal keys (``<action>_p95_ms``, ``search_goal_met``, ...) come from this
phase. Then the same users work flat out for ``--stress-seconds`` (default S): N requests
always in flight, a saturation test whose figures are reported as ``stress_*`` (on two cores
they measure the queue: about 10 ms of CPU per action caps the machine near 200 actions/s,
so 50 waiting users wait about 250 ms each). ``--think-s 0`` runs only the flat-out phase,
as the goal phase. The baseline is the same mix with one thread (cycling through the three
roles) for ``--single-seconds``; ``speedup_vs_single_user`` is the ratio of throughputs (of
the flat-out phase when there is one).
After every phase the run is reconciled against the database:

- lost_writes: a write a worker saw succeed that is missing (payment, booking, patient,
  charge, invoice), an audit row missing for a write or an audited read, or an invoice whose
  paid amount grew less than its recorded payments.
- doubled_writes: a row the bench users wrote that no worker saw succeed, a payment key
  stored twice or answered with another payment on resend, a second audit row for one write,
  an invoice paid more than its recorded payments or beyond what is owed, a slot whose booked
  count differs from its live appointments or exceeds its capacity (``overbooked_slots``).

Refusals (slot full, overpayment, nothing to invoice, ...) are the service saying no on
purpose and are counted apart from ``errors`` (exceptions). Last stdout line is one JSON object.

Threads in one Python process share one interpreter lock, and the service layer is Python, so
``--processes P`` splits the N staff over P forked worker processes, as a deployment runs one
app process per core behind a proxy. Each has its own engine (a pool of one connection per
thread, plus two) and its own copy of the world: the same search texts, patients and slots,
so bookings still race across processes, and every P-th open invoice. Each sends its ledger
back; the parent merges them and reconciles every write of every process as above. The
single-user baseline always runs in the parent.

    .venv/bin/python bench/load.py [--users N] [--seconds S] [--patients P] [--single-seconds S]
                                   [--think-s T] [--stress-seconds S] [--processes P]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import multiprocessing
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from _common import bench_url, fresh_database
from sqlalchemy import Engine, create_engine, func, or_, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from cims import migrate
from cims.appointments.booking import (
    LIVE,
    BookingRefused,
    book_appointment,
    cancel_appointment,
    generate_slots,
    list_open_slots,
)
from cims.appointments.models import Appointment, Slot
from cims.base import utcnow
from cims.billing.catalogue import BillingRefused
from cims.billing.charges import post_charge
from cims.billing.invoices import create_invoice, issue_invoice
from cims.billing.models import Charge, Invoice, Payment
from cims.billing.payments import take_payment
from cims.clock import local_today
from cims.config import PROJECT_ROOT, get_settings
from cims.demo.identities import generate_people
from cims.demo.vocab import CLINIC_DEPTS
from cims.org.models import Department
from cims.patients.models import Patient
from cims.patients.schemas import InvalidPatient, PatientInput
from cims.patients.search import search_patients
from cims.patients.service import PossibleDuplicate, register_patient
from cims.records.models import Encounter
from cims.records.summary import build_summary
from cims.security.accounts import build_actor, create_account
from cims.security.crypto import load_cipher
from cims.security.models import AuditEvent, User, UserDepartment
from cims.security.rbac import Actor

STATE = PROJECT_ROOT / "var" / "bench" / "load" / "state.json"
ROLES = ("doctor", "registrar", "finance")
MIX: dict[str, dict[str, int]] = {
    "doctor": {"search": 30, "summary": 70},
    "registrar": {"search": 40, "register": 20, "book": 40},
    "finance": {"search": 20, "charge": 30, "invoice": 10, "pay": 40},
}
NO_SIGN_IN = "!bench-no-sign-in"  # not a bcrypt hash: these users cannot sign in
ACTIONS = ("search", "summary", "register", "book", "charge", "invoice", "pay")
INSTALMENT = Decimal("10.00")
RETRY_SHARE = 0.1
MANUAL_ITEMS = ("LAB-GLU", "LAB-CBC", "LAB-LIPID", "IMG-CXR", "CONS-ONLINE")
GOALS_P95_MS = {"search": 100, "summary": 300}
# Audit action of each kind of recorded write, and of the audited reads.
WRITE_AUDIT = {
    "patient": "patients.register",
    "appointment": "appointments.book",
    "charge": "billing.post_charge",
    "invoice": "billing.create_invoice",
    "invoice_issue": "billing.issue_invoice",
    "payment": "billing.take_payment",
}
TABLES: dict[str, Any] = {
    "patient": Patient, "appointment": Appointment, "charge": Charge, "invoice": Invoice,
    "payment": Payment,
}  # fmt: skip
READ_AUDIT = {"search": "patients.search", "summary": "records.view_summary"}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the hospital, built once


def _exists(url: str) -> bool:
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"))
    try:
        with admin.connect() as conn:
            query = text("SELECT 1 FROM pg_database WHERE datname = :n")
            return conn.scalar(query, {"n": target.database}) is not None
    finally:
        admin.dispose()


def _database(patients: int) -> tuple[str, dict[str, Any]]:
    """URL of the seeded hospital (built on first use, then reused) and what was built."""
    name = f"cims_bench_load_{patients}"
    url = bench_url(name)
    state = json.loads(STATE.read_text()) if STATE.exists() else {}
    built = state.get(name)
    if built and _exists(url):
        migrate.upgrade(url)
        _say(f"reusing {name} (seeded {built['seeded_at']}; state: {STATE})")
        return url, built
    from cims.demo.seed import seed_demo

    _say(f"seeding {patients:,} patients into {name} (once)")
    url = fresh_database(name)
    engine = create_engine(url)
    report = seed_demo(engine, patients=patients, seed=42, progress=_say)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    built = {
        "database": name,
        "patients": patients,
        "seed": 42,
        "reference_date": report.reference_date.isoformat(),
        "rows": report.total_rows,
        "seed_seconds": report.seconds,
        "seeded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    state[name] = built
    STATE.parent.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps(state, indent=1))
    return url, built


def _staff(engine: Engine, per_role: int, clinics: list[int]) -> dict[str, list[Actor]]:
    """``per_role`` bench users of each role (created once, reused), as Actors; doctors
    work in ``clinics`` in turn."""
    with Session(engine) as db, db.begin():
        staff: dict[str, list[Actor]] = {}
        for role in ROLES:
            staff[role] = []
            for n in range(per_role):
                username = f"bench.load.{role}{n:02d}"
                clinic = [clinics[n % len(clinics)]] if role == "doctor" else []
                user = db.scalar(select(User).where(User.username == username))
                if user is None:
                    user = create_account(
                        session=db, username=username, display_name=f"Load {role} {n}",
                        password="", password_hash=NO_SIGN_IN, roles=[role],
                        department_ids=clinic,
                    )  # fmt: skip
                elif clinic:  # a reused doctor moves to a clinic with patients in care now
                    db.execute(
                        update(UserDepartment)
                        .where(UserDepartment.user_id == user.id)
                        .values(department_id=clinic[0])
                    )
                staff[role].append(build_actor(db, user))
    return staff


# ---------------------------------------------------------------- what the staff work on


@dataclass
class World:
    """Shared pools the staff draw from: search texts, patients, invoices open to pay."""

    queries: list[str]
    in_care: dict[int, list[int]]
    clinic_departments: list[int]
    top_patient: int
    open_invoices: list[int]
    paid_before: dict[int, Decimal]
    lock: threading.Lock = field(default_factory=threading.Lock)
    done_payments: list[tuple[str, int, int]] = field(default_factory=list)  # key, invoice, id

    def patient(self, rng: random.Random) -> int:
        """A random demo patient (the desk sees whoever walks in)."""
        return rng.randint(1, self.top_patient)

    def invoice(self, rng: random.Random) -> int | None:
        with self.lock:
            return rng.choice(self.open_invoices) if self.open_invoices else None

    def offer(self, invoice_id: int) -> None:
        with self.lock:
            self.paid_before.setdefault(invoice_id, Decimal("0"))
            self.open_invoices.append(invoice_id)

    def settled(self, invoice_id: int) -> None:
        with self.lock:
            if invoice_id in self.open_invoices:
                self.open_invoices.remove(invoice_id)

    def paid(self, key: str, invoice_id: int, payment_id: int) -> None:
        with self.lock:
            self.done_payments.append((key, invoice_id, payment_id))

    def earlier_payment(self, rng: random.Random) -> tuple[str, int, int] | None:
        with self.lock:
            return rng.choice(self.done_payments) if self.done_payments else None


def _share(world: World, part: int, parts: int) -> World:
    """Worker process ``part``'s world: every search text, patient and clinic, and every
    ``parts``-th open invoice and earlier payment (cashiers of one process share a list)."""
    invoices = world.open_invoices[part::parts]
    return World(
        queries=world.queries,
        in_care=world.in_care,
        clinic_departments=world.clinic_departments,
        top_patient=world.top_patient,
        open_invoices=invoices,
        paid_before={i: world.paid_before[i] for i in invoices},
        done_payments=world.done_payments[part::parts],
    )


def _world(engine: Engine, rng: random.Random) -> World:
    """Sample real patients for search texts and care lists, and open demo invoices."""
    since = utcnow() - dt.timedelta(days=get_settings().care_window_days)
    with Session(engine) as db:
        top = int(db.scalar(select(func.max(Patient.id))) or 0)
        ids = rng.sample(range(1, top + 1), min(top, 600))
        rows = db.scalars(
            select(Patient).where(
                Patient.id.in_(ids), Patient.voided.is_(False), Patient.merged_into_id.is_(None)
            )
        ).all()
        cipher = load_cipher(db)
        queries = []
        for p in rows:
            phone = (
                cipher.decrypt_text(p.phone_enc, table="patients", column="phone", row_id=p.id)
                if p.phone_enc
                else ""
            )
            queries += [p.full_name[:2], p.full_name[:2], p.mrn, p.name_initials or p.mrn]
            queries += [phone, p.full_name + phone[-4:]] if phone else []
        clinics = list(db.scalars(select(Department.id).where(Department.code.in_(CLINIC_DEPTS))))
        in_care: dict[int, list[int]] = {}
        for dept in clinics:
            in_care[dept] = list(
                db.scalars(
                    select(Encounter.patient_id)
                    .where(
                        Encounter.department_id == dept,
                        Encounter.voided.is_(False),
                        or_(Encounter.ended_at.is_(None), Encounter.ended_at >= since),
                    )
                    .distinct()
                    .limit(2000)
                )
            )
        invoices = db.execute(
            select(Invoice.id, Invoice.paid_amount)
            .where(
                Invoice.status.in_(("issued", "partly_paid")),
                Invoice.voided.is_(False),
                Invoice.patient_amount - Invoice.paid_amount >= 3 * INSTALMENT,
            )
            .order_by(func.random())
            .limit(3000)
        ).all()
        generate_slots(db, start=local_today(), days=28)  # what the daily job does
        db.commit()
    in_care = {dept: patients for dept, patients in in_care.items() if patients}
    if not in_care:
        raise SystemExit("no clinic has patients in care: the database is too small")
    return World(
        queries=[q for q in queries if q],
        in_care=in_care,
        clinic_departments=clinics,
        top_patient=top,
        open_invoices=[i for i, _ in invoices],
        paid_before={i: paid for i, paid in invoices},
    )


# ---------------------------------------------------------------- one member of staff


@dataclass
class Ledger:
    """What one worker saw happen (merged after the run)."""

    timings: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    refusals: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    writes: list[tuple[str, int]] = field(default_factory=list)  # (kind, id)
    reads: Counter[str] = field(default_factory=Counter)
    payments: dict[str, tuple[int, int, Decimal]] = field(default_factory=dict)
    resends: int = 0  # earlier payment keys sent again (answered with the first payment)
    resend_mismatch: int = 0
    bookings: list[tuple[int, int]] = field(default_factory=list)  # (appointment, slot)
    charged: list[int] = field(default_factory=list)  # patients with uninvoiced charges
    people: list[PatientInput] = field(default_factory=list)

    def merge(self, other: Ledger) -> None:
        for action, spent in other.timings.items():
            self.timings[action] += spent
        self.refusals += other.refusals
        self.errors += other.errors
        self.writes += other.writes
        self.reads += other.reads
        self.payments.update(other.payments)
        self.resends += other.resends
        self.resend_mismatch += other.resend_mismatch
        self.bookings += other.bookings


class Refused(Exception):
    """The service said no on purpose (counted, not an error)."""


def _free_slots(engine: Engine, registrar: Actor, user_ids: list[int]) -> int:
    """Cancel the future bookings earlier runs of the bench left (the database is reused, and
    a week of clinics fills up), through the service, so every run books into free places;
    the number cancelled."""
    with Session(engine) as session:
        ids = session.scalars(
            select(Appointment.id).where(
                Appointment.created_by_id.in_(user_ids),
                Appointment.status == "booked",
                Appointment.scheduled_at > utcnow(),
            )
        ).all()
    for appointment_id in ids:
        with Session(engine) as db, db.begin():
            cancel_appointment(
                session=db, actor=registrar, appointment_id=appointment_id, reason="bench reset"
            )
    return len(ids)


def _tx(engine: Engine, work: Callable[[Session], Any]) -> Any:
    """One page action: one session, one transaction."""
    with Session(engine) as db, db.begin():
        return work(db)


def _search(engine: Engine, actor: Actor, world: World, book: Ledger, rng: random.Random) -> None:
    query = rng.choice(world.queries)
    _tx(engine, lambda db: search_patients(session=db, actor=actor, query=query))
    book.reads["search"] += 1


def _summary(engine: Engine, actor: Actor, world: World, book: Ledger, rng: random.Random) -> None:
    in_care = world.in_care.get(actor.department_ids[0])
    if not in_care:  # a reused account in a clinic that has no patients in care now
        raise Refused("summary.no_patient_in_care")
    patient_id = rng.choice(in_care)
    today = local_today()
    _tx(
        engine,
        lambda db: build_summary(session=db, actor=actor, patient_id=patient_id, today=today),
    )
    book.reads["summary"] += 1


def _person(book: Ledger, rng: random.Random) -> PatientInput:
    if not book.people:
        # New identities on every run: the database is reused, a repeated ID is refused.
        fresh = np.random.default_rng([rng.getrandbits(64), time.time_ns()])
        people = generate_people(200, fresh, reference_date=local_today())
        for row in people.itertuples():
            book.people.append(
                PatientInput(
                    family_name=row.family_name, given_name=row.given_name, sex=row.sex,
                    national_id=row.resident_id, mobile=row.mobile, address=row.address,
                    emergency_contact_name=row.emergency_contact_name,
                    emergency_contact_relation=row.emergency_contact_relation,
                    emergency_contact_phone=row.emergency_contact_phone,
                )
            )  # fmt: skip
    return book.people.pop()


def _register(engine: Engine, actor: Actor, world: World, book: Ledger, rng: random.Random) -> None:
    data = _person(book, rng)

    def register(confirmed: bool) -> int:
        return int(_tx(engine, lambda db: register_patient(
            session=db, actor=actor, data=data, confirm_not_duplicate=confirmed).id))  # fmt: skip

    try:
        try:
            patient_id = register(False)
        except PossibleDuplicate:
            book.refusals["register.look_alike_confirmed"] += 1
            patient_id = register(True)
    except InvalidPatient as refusal:
        raise Refused(refusal.problems[0]) from refusal
    book.writes.append(("patient", patient_id))


def _book(engine: Engine, actor: Actor, world: World, book: Ledger, rng: random.Random) -> None:
    department = rng.choice(world.clinic_departments)
    day = local_today() + dt.timedelta(days=rng.randint(0, 6))
    slots = _tx(engine, lambda db: list_open_slots(
        session=db, actor=actor, department_id=department, day=day))  # fmt: skip
    if not slots:
        raise Refused("booking.no_open_slot")
    slot = rng.choice(slots[:5])
    patient_id = world.patient(rng)
    try:
        appointment_id = _tx(engine, lambda db: book_appointment(
            session=db, actor=actor, patient_id=patient_id, slot_id=slot.slot_id,
            reason="复诊 / follow-up").id)  # fmt: skip
    except BookingRefused as refusal:
        raise Refused(refusal.key) from refusal
    book.writes.append(("appointment", appointment_id))
    book.bookings.append((appointment_id, slot.slot_id))


def _charge(engine: Engine, actor: Actor, world: World, book: Ledger, rng: random.Random) -> None:
    patient_id = world.patient(rng)
    code = rng.choice(MANUAL_ITEMS)
    try:
        charge_id = _tx(engine, lambda db: post_charge(
            session=db, actor=actor, patient_id=patient_id, encounter_id=None, price_code=code,
            quantity=Decimal(1), source_type="manual", source_id=None,
            service_date=local_today()).id)  # fmt: skip
    except BillingRefused as refusal:
        raise Refused(refusal.key) from refusal
    book.writes.append(("charge", charge_id))
    book.charged.append(patient_id)


def _invoice(engine: Engine, actor: Actor, world: World, book: Ledger, rng: random.Random) -> None:
    patient_id = book.charged.pop()
    try:
        invoice_id = _tx(engine, lambda db: create_invoice(
            session=db, actor=actor, patient_id=patient_id).invoice_id)  # fmt: skip
        book.writes.append(("invoice", invoice_id))
        view = _tx(engine, lambda db: issue_invoice(session=db, actor=actor, invoice_id=invoice_id))
    except BillingRefused as refusal:
        raise Refused(refusal.key) from refusal
    book.writes.append(("invoice_issue", invoice_id))
    if view.balance >= INSTALMENT:
        world.offer(invoice_id)


def _pay(engine: Engine, actor: Actor, world: World, book: Ledger, rng: random.Random) -> None:
    earlier = world.earlier_payment(rng) if rng.random() < RETRY_SHARE else None
    if earlier is not None:  # the same request again: must answer with the first payment
        key, invoice_id, first_id = earlier
    else:
        key, invoice_id, first_id = uuid.uuid4().hex, world.invoice(rng) or 0, 0
    try:
        payment_id = _tx(engine, lambda db: take_payment(
            session=db, actor=actor, invoice_id=invoice_id, amount=INSTALMENT, method="cash",
            idempotency_key=key).id)  # fmt: skip
    except BillingRefused as refusal:
        if refusal.key in ("billing.overpayment", "billing.invoice_paid"):
            world.settled(invoice_id)
        raise Refused(refusal.key) from refusal
    if first_id:
        book.resend_mismatch += payment_id != first_id
        book.resends += 1
        return
    book.payments[key] = (payment_id, invoice_id, INSTALMENT)
    book.writes.append(("payment", payment_id))
    world.paid(key, invoice_id, payment_id)


DO = {"search": _search, "summary": _summary, "register": _register, "book": _book,
      "charge": _charge, "invoice": _invoice, "pay": _pay}  # fmt: skip


def _work(engine: Engine, actors: list[Actor], world: World, book: Ledger, deadline: float,
          seed: int, think_s: float = 0.0) -> None:  # fmt: skip
    """Cycle through ``actors`` (one for staff, three roles for the single user) until time,
    pausing a random think time (mean ``think_s``) after each action."""
    rng = random.Random(seed)
    turn = 0
    while time.perf_counter() < deadline:
        if think_s and turn:
            time.sleep(min(rng.expovariate(1 / think_s), max(0.0, deadline - time.perf_counter())))
            if time.perf_counter() >= deadline:
                return
        actor = actors[turn % len(actors)]
        turn += 1
        weights = MIX[actor.roles[0]]
        action = rng.choices(list(weights), weights=list(weights.values()))[0]
        if (action == "invoice" and not book.charged) or (
            action == "pay" and not world.open_invoices
        ):
            action = "charge"  # nothing to bill yet: the cashier posts a charge first
        started = time.perf_counter()
        try:
            DO[action](engine, actor, world, book, rng)
        except Refused as refusal:  # timed apart: a refusal is not the action's latency
            book.refusals[f"{action}.{refusal}"] += 1
            continue
        except Exception as exc:  # any failure is a finding, counted and named
            book.errors[f"{action}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"] += 1
            continue
        book.timings[action].append((time.perf_counter() - started) * 1000)


def _phase(engine: Engine, crews: list[list[Actor]], world: World, seconds: float,
           seed: int, think_s: float = 0.0) -> tuple[Ledger, float]:  # fmt: skip
    """Run one thread per crew for ``seconds``; the merged ledger and the elapsed time."""
    books = [Ledger() for _ in crews]
    deadline = time.perf_counter() + seconds
    threads = [
        threading.Thread(
            target=_work, args=(engine, crew, world, book, deadline, seed + i, think_s)
        )
        for i, (crew, book) in enumerate(zip(crews, books, strict=True))
    ]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    total = Ledger()
    for book in books:
        total.merge(book)
    return total, elapsed


def _engine(url: str, threads: int) -> Engine:
    """An engine whose pool holds a connection for each thread: none waits for another."""
    return create_engine(
        url, pool_size=threads + 2, max_overflow=0, pool_timeout=60,
        connect_args={"options": "-c timezone=UTC"},
    )  # fmt: skip


def _process(url: str, crews: list[list[Actor]], world: World, seconds: float, seed: int,
             think_s: float, start: Barrier, results: Queue[Any]) -> None:  # fmt: skip
    """One worker process: its own engine and threads; its ledger goes back to the parent."""
    engine = _engine(url, len(crews))
    try:
        start.wait(timeout=300)
        book, elapsed = _phase(engine, crews, world, seconds, seed, think_s)
        book.people.clear()  # identities not used: nothing to check, only to pickle
        results.put((book, elapsed))
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        engine.dispose()


def _phase_in_processes(
    url: str, crews: list[list[Actor]], world: World, seconds: float, seed: int, think_s: float,
    processes: int,
) -> tuple[Ledger, float]:  # fmt: skip
    """``_phase`` with the crews dealt over ``processes`` forked worker processes, started
    together; the merged ledger and the longest worker's elapsed time."""
    context = multiprocessing.get_context("fork")  # inherits the actors and the world as-is
    start = context.Barrier(processes + 1)
    results: Queue[Any] = context.Queue()
    workers = []
    for p in range(processes):
        share = (url, crews[p::processes], _share(world, p, processes), seconds)
        rest = (seed + 100_000 * p, think_s, start, results)
        workers.append(context.Process(target=_process, args=share + rest, daemon=True))
    for worker in workers:
        worker.start()
    total, elapsed = Ledger(), 0.0
    try:
        start.wait(timeout=300)
        for _ in workers:
            answer = results.get(timeout=seconds + 300)
            if isinstance(answer, str):
                raise SystemExit(f"a worker process failed: {answer}")
            book, spent = answer
            total.merge(book)
            elapsed = max(elapsed, spent)
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    return total, elapsed


# ---------------------------------------------------------------- after the run


def _stored(db: Session, model: Any, ids: list[int], since: dt.datetime) -> set[int]:
    return set(
        db.scalars(select(model.id).where(model.created_by_id.in_(ids), model.created_at >= since))
    )


def reconcile(
    engine: Engine, user_ids: list[int], since: dt.datetime, book: Ledger, world: World
) -> dict[str, int]:
    """Compare what the workers saw succeed with what the database holds (see docstring)."""
    recorded: dict[str, set[int]] = defaultdict(set)
    for kind, object_id in book.writes:
        recorded[kind].add(object_id)
    lost = doubled = 0
    with Session(engine) as db:
        for kind, model in TABLES.items():
            stored = _stored(db, model, user_ids, since)
            lost += len(recorded[kind] - stored)
            doubled += len(stored - recorded[kind])
        # Payments: each key once, and the payment the worker was given.
        by_key = dict(
            db.execute(
                select(Payment.idempotency_key, Payment.id).where(
                    Payment.idempotency_key.in_(list(book.payments))
                )
            ).all()
        )
        for key, (payment_id, _invoice, _amount) in book.payments.items():
            lost += key not in by_key
            doubled += key in by_key and by_key[key] != payment_id
        doubled += book.resend_mismatch
        # Invoices: the paid amount grew by exactly the recorded payments, never past what is owed.
        recorded_paid: dict[int, Decimal] = defaultdict(Decimal)
        for _payment, invoice_id, amount in book.payments.values():
            recorded_paid[invoice_id] += amount
        for invoice_id, paid, owed in db.execute(
            select(Invoice.id, Invoice.paid_amount, Invoice.patient_amount).where(
                Invoice.id.in_(list(recorded_paid))
            )
        ):
            grew = paid - world.paid_before.get(invoice_id, Decimal("0"))
            lost += grew < recorded_paid[invoice_id]
            doubled += grew > recorded_paid[invoice_id] or paid > owed
        # Slots: the booked count is the live appointments, and never above capacity.
        slots = {slot for _appointment, slot in book.bookings}
        live = (
            select(func.count())
            .where(Appointment.slot_id == Slot.id, Appointment.status.in_(LIVE))
            .scalar_subquery()
        )
        overbooked = mismatched = 0
        for _slot, capacity, booked, held in db.execute(
            select(Slot.id, Slot.capacity, Slot.booked_count, live).where(Slot.id.in_(list(slots)))
        ):
            overbooked += booked > capacity or held > capacity
            mismatched += booked != held
        # Audit: one row per write and per audited read.
        counts = Counter(
            {
                (action, object_id): n
                for action, object_id, n in db.execute(
                    select(AuditEvent.action, AuditEvent.object_id, func.count())
                    .where(
                        AuditEvent.actor_id.in_(user_ids),
                        AuditEvent.occurred_at >= since,
                        AuditEvent.action.in_([*WRITE_AUDIT.values(), *READ_AUDIT.values()]),
                    )
                    .group_by(AuditEvent.action, AuditEvent.object_id)
                )
            }
        )
    missing_audit = 0
    for kind, object_id in book.writes:
        n = counts[(WRITE_AUDIT[kind], str(object_id))]
        missing_audit += n == 0
        doubled += n > 1
    for kind, action in READ_AUDIT.items():
        audited = sum(n for (a, _o), n in counts.items() if a == action)
        missing_audit += max(0, book.reads[kind] - audited)
        doubled += max(0, audited - book.reads[kind])
    return {
        "lost_writes": lost + missing_audit,
        "doubled_writes": doubled + overbooked + mismatched,
        "overbooked_slots": overbooked,
        "slot_count_mismatches": mismatched,
        "missing_audit_rows": missing_audit,
        "writes_checked": len(book.writes),
        "reads_checked": sum(book.reads.values()),
    }


def _free_connections(engine: Engine) -> int:
    with engine.connect() as conn:
        most = int(conn.scalar(text("SHOW max_connections")) or 0)
        used = int(conn.scalar(text("SELECT count(*) FROM pg_stat_activity")) or 0)
    return most - used


def _percentiles(spent: list[float]) -> tuple[float | None, float | None, float | None]:
    if not spent:
        return (None, None, None)
    p50, p95, p99 = np.percentile(np.array(spent), [50, 95, 99])
    return round(float(p50), 1), round(float(p95), 1), round(float(p99), 1)


def main() -> None:
    """Build or reuse the hospital, run one user then N users, reconcile, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--single-seconds", type=float, help="baseline length (default S/3)")
    parser.add_argument("--seed", type=int, help="default: new each run (the database is reused)")
    parser.add_argument(
        "--think-s", type=float, default=2.0,
        help="mean pause after each action, people at desks (0: flat out, a stress test)",
    )  # fmt: skip
    parser.add_argument(
        "--stress-seconds", type=float,
        help="then the same users flat out (no pause) for this long (default S; 0: skip)",
    )  # fmt: skip
    parser.add_argument(
        "--processes", type=int, default=1,
        help="worker processes the users are split over (1: threads of this process)",
    )  # fmt: skip
    args = parser.parse_args()
    if not 1 <= args.processes <= args.users:
        parser.error("--processes must be between 1 and --users")
    single_seconds = args.single_seconds or max(5.0, args.seconds / 3)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    rng = random.Random(seed)

    url, built = _database(args.patients)
    # The many-user phase runs here with one process, else in the workers (their own pools).
    engine = _engine(url, args.users if args.processes == 1 else 1)
    free = _free_connections(engine)
    if free < args.users + 4 + 2 * args.processes:
        raise SystemExit(f"the server has {free} free connections; {args.users} users need more")
    per_role = -(-args.users // len(ROLES))
    world = _world(engine, rng)
    staff = _staff(engine, per_role, sorted(world.in_care))
    crews = [[staff[ROLES[i % len(ROLES)]][i // len(ROLES)]] for i in range(args.users)]
    user_ids = [a.user_id for actors in staff.values() for a in actors]
    # The bench's own bookkeeping (the world's patients, queries and slots: millions of
    # objects) is built; frozen, the collector's full passes stop walking it, which would
    # otherwise stall every simulated user at once, the app's work included.
    gc.collect()
    gc.freeze()
    freed = _free_slots(engine, staff["registrar"][0], user_ids)
    if freed:
        _say(f"cancelled {freed:,} future bookings of earlier runs")
        time.sleep(1.1)  # outside the reconciled window, which starts a second back
    since = utcnow() - dt.timedelta(seconds=1)
    load_before = os.getloadavg()[0]

    _say(
        f"single user for {single_seconds:.0f} s, then {args.users} users for {args.seconds:.0f} s"
    )
    solo = [[staff[r][0] for r in ROLES]]
    # The baseline works flat out: it measures one action alone, not a person's pace.
    single, single_s = _phase(engine, solo, world, single_seconds, seed)

    def many_users(seconds: float, seed: int, think_s: float) -> tuple[Ledger, float]:
        if args.processes == 1:
            return _phase(engine, crews, world, seconds, seed, think_s)
        engine.dispose()  # no pooled connection is inherited by the forked workers
        return _phase_in_processes(url, crews, world, seconds, seed, think_s, args.processes)

    many, many_s = many_users(args.seconds, seed + 1000, args.think_s)
    stress_seconds = args.seconds if args.stress_seconds is None else args.stress_seconds
    stress = None
    if args.think_s and stress_seconds:
        _say(f"then {args.users} users flat out for {stress_seconds:.0f} s")
        stress, stress_s = many_users(stress_seconds, seed + 2000, 0.0)
    load_after = os.getloadavg()[0]
    everything = Ledger()
    everything.merge(single)
    everything.merge(many)
    if stress is not None:
        everything.merge(stress)
    checked = reconcile(engine, user_ids, since, everything, world)
    engine.dispose()

    done = sum(len(v) for v in many.timings.values())
    single_done = sum(len(v) for v in single.timings.values())
    per_s, single_per_s = done / many_s, single_done / single_s
    errors = everything.errors
    for message, n in errors.most_common(10):
        _say(f"error x{n}: {message}")
    result: dict[str, Any] = {
        "bench": "load",
        "users": args.users,
        "processes": args.processes,
        "seconds": args.seconds,
        "think_s": args.think_s,
        "seed": seed,
        "patients": args.patients,
        "database": built["database"],
        "actions": done,
        "actions_per_s": round(per_s, 1),
        "single_user_actions_per_s": round(single_per_s, 1),
        "speedup_vs_single_user": round(per_s / single_per_s, 2) if single_per_s else None,
    }
    for action in ACTIONS:
        p50, p95, p99 = _percentiles(many.timings[action])
        result |= {f"{action}_p50_ms": p50, f"{action}_p95_ms": p95, f"{action}_p99_ms": p99,
                   f"{action}_count": len(many.timings[action])}  # fmt: skip
    for action in GOALS_P95_MS:
        result[f"single_user_{action}_p95_ms"] = _percentiles(single.timings[action])[1]
    if stress is not None:  # saturation: N requests always in flight on two cores
        stress_done = sum(len(v) for v in stress.timings.values())
        stress_per_s = stress_done / stress_s
        result |= {"stress_seconds": stress_seconds,
                   "stress_actions_per_s": round(stress_per_s, 1)}  # fmt: skip
        # Paced users are idle most of the time: the ratio that says what N users add over
        # one is the flat-out one.
        if single_per_s:
            result["speedup_vs_single_user"] = round(stress_per_s / single_per_s, 2)
        for action in ACTIONS:
            p50, p95, _ = _percentiles(stress.timings[action])
            result |= {f"stress_{action}_p50_ms": p50, f"stress_{action}_p95_ms": p95}
    result |= {
        "errors": sum(errors.values()),
        "payment_resends": everything.resends,
        "refused": sum(everything.refusals.values()),
        **checked,
        **{
            f"{action}_goal_met": result[f"{action}_p95_ms"] is not None
            and result[f"{action}_p95_ms"] <= goal
            for action, goal in GOALS_P95_MS.items()
        },
        "refusals": dict(everything.refusals.most_common()),
        "loadavg_1m_before": round(load_before, 2),
        "loadavg_1m_after": round(load_after, 2),
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
