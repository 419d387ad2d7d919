"""``seed_demo``: load a realistic, deterministic demo hospital into an empty CIMS database.

Reference data and staff accounts go through the ORM and the account service; everything
per patient is generated with numpy and streamed in with COPY, and so is the audit history
derived from those rows (``cims.demo.audit_history``). All of it is one transaction: a
failure leaves nothing behind; the history is sealed into the audit chain once it commits.
Same patients + seed + reference date ⇒ same data (apart from random AES-GCM nonces, bcrypt
salts and TOTP secrets).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, cast
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session

from cims.config import get_settings
from cims.demo import engagement
from cims.demo.activity import build_activity
from cims.demo.audit_history import AuditHistory
from cims.demo.copyload import BulkLoader
from cims.demo.patients import build_people
from cims.demo.pipeline import generate_and_load
from cims.demo.reference import load_reference
from cims.demo.scheduling import schedule
from cims.demo.staff import DEMO_PATIENT, DEMO_PROFILES, create_staff
from cims.demo.vec import Clock, stream
from cims.demo.vocab import DEPARTMENTS
from cims.org.models import Department
from cims.patients.models import Patient
from cims.records.codes import load_who_icd10
from cims.schema import metadata
from cims.security import audit
from cims.security.audit_chain import seal_pending
from cims.security.bootstrap import ensure_roles_and_privileges
from cims.security.crypto import load_cipher
from cims.security.models import AuditEvent, User

# username -> (password, role). Published demo credentials: never use them outside a demo.
DEMO_LOGINS: Final[dict[str, tuple[str, str]]] = {
    "admin": ("Keep-Safe-Root-2026", "admin"),
    "doctor": ("Stethoscope-2026", "doctor"),
    "nurse": ("Bedside-Care-2026", "nurse"),
    "registrar": ("FrontDesk-Queue-2026", "registrar"),
    "finance": ("Ledger-Balance-2026", "finance"),
    "manager": ("Insight-Board-2026", "manager"),
    "analyst": ("Risk-Report-2026", "data_staff"),
    "patient": ("Portal-Health-2026", "patient"),
}
# Above this size indexes and foreign keys are rebuilt after COPY instead of maintained per row.
FAST_LOAD_MIN_PATIENTS: Final = 10_000

LOADED_TABLES: Final = (
    "patients", "wards", "beds", "doctor_schedules", "slots", "appointments", "encounters",
    "bed_assignments", "diagnoses", "problems", "allergies", "observations", "clinical_notes",
    "orders", "procedures", "prescriptions", "treatment_plans", "follow_ups", "invoices",
    "charges", "invoice_lines", "payments", "surveys", "audit_log", "sign_in_attempts",
    "break_glass_grants",
)  # fmt: skip
# Sealing the demo's audit history in one sweep: big batches, few round trips.
SEAL_BATCH: Final = 20_000
_UNSEALED_THROUGH: Final = text(
    "SELECT EXISTS (SELECT 1 FROM audit_log a WHERE a.id <= :last_id "
    "AND NOT EXISTS (SELECT 1 FROM audit_seals s WHERE s.audit_id = a.id))"
)
_ORM_TABLES: Final = (
    "departments", "insurance_plans", "price_items", "faq_entries", "users", "user_roles",
    "user_departments", "consultation_threads", "consultation_messages",
)  # fmt: skip


class DemoDataExists(RuntimeError):
    """The database already holds patients (or demo accounts); pass reset=True to replace."""


@dataclass
class SeedReport:
    """What was loaded: rows per table, seconds taken, and the demo logins' TOTP secrets."""

    patients: int
    seed: int
    reference_date: dt.date
    rows: dict[str, int]
    seconds: float
    totp_secrets: dict[str, str] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    copy_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        """Rows loaded over all tables."""
        return sum(self.rows.values())


def _prepare(session: Session, *, reset: bool) -> None:
    """Refuse to seed over data unless asked to reset; reset empties every data table."""
    # Two processes starting on an empty database (CLI and first app start) seed once: the
    # second waits here, then finds the data and refuses.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('cims.demo.seed'))"))
    has_patients = session.scalar(select(Patient.id).limit(1)) is not None
    demo_users = session.scalars(select(User.username).where(User.username.in_(DEMO_LOGINS)))
    taken = sorted(demo_users)
    codes = [d.code for d in DEPARTMENTS]
    has_depts = session.scalar(select(Department.id).where(Department.code.in_(codes)).limit(1))
    if (has_patients or taken or has_depts is not None) and not reset:
        what = (
            "patients"
            if has_patients
            else ("demo accounts " + ", ".join(taken) if taken else "departments")
        )
        raise DemoDataExists(f"the database already holds {what}; use reset to replace everything")
    if reset:
        # Append-only tables (the audit trail) refuse TRUNCATE by trigger, owner included:
        # they survive a reset, which is itself audited below. They have no foreign keys,
        # so CASCADE never reaches them.
        kept = set(
            session.scalars(
                text(
                    "SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c "
                    "ON c.oid = t.tgrelid WHERE NOT t.tgisinternal AND (t.tgtype & 32) <> 0"
                )
            )
        )
        quote = session.get_bind().dialect.identifier_preparer.quote
        names = ", ".join(
            quote(t.name)
            for t in metadata.sorted_tables
            if t.name != "alembic_version" and t.name not in kept
        )
        # Identifiers from our own metadata, quoted by the dialect (they cannot be parameters).
        session.execute(text("TRUNCATE TABLE " + names + " RESTART IDENTITY CASCADE"))
    ensure_roles_and_privileges(session)


def _seal_through(engine: Engine, last_id: int) -> int:
    """Seal every committed audit row up to ``last_id``; returns the rows this call sealed."""
    # Historic rows are far older than the sealer's recent pass looks: a full sweep, now, so
    # the trail is whole before anyone reads it (the CLI anchors the head afterwards). A
    # running app's sealer may hold the lock for a pass: then wait for it, briefly.
    sealed, deadline = 0, time.monotonic() + 60
    while True:
        sealed += seal_pending(engine, batch=SEAL_BATCH)
        with engine.connect() as conn:
            left = conn.scalar(_UNSEALED_THROUGH, {"last_id": last_id})
        if not left or time.monotonic() > deadline:
            return sealed
        time.sleep(0.2)


def seed_demo(
    engine: Engine,
    *,
    patients: int = 2000,
    seed: int = 42,
    reference_date: dt.date | None = None,
    reset: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SeedReport:
    """Generate and load the demo hospital; raises DemoDataExists unless the database is empty."""
    if patients < 1:
        raise ValueError("patients must be at least 1")
    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    phases: dict[str, float] = {}
    mark = [started]

    def lap(name: str) -> None:
        now = time.perf_counter()
        phases[name] = round(now - mark[0], 2)
        mark[0] = now
        say(f"{name}: {phases[name]:.1f} s")

    zone = ZoneInfo(get_settings().timezone)
    today = reference_date or dt.datetime.now(zone).date()  # the hospital's today
    offset = dt.datetime.combine(today, dt.time(12), zone).utcoffset() or dt.timedelta(0)
    clock = Clock(today, offset)
    with Session(engine) as session, session.begin():
        _prepare(session, reset=reset)
        load_who_icd10(session)  # the ICD-10 list the diagnosis search box offers
        cipher = load_cipher(session)
        ref = load_reference(
            session, history_start=clock.history_start.astype(dt.date), reference=today
        )
        staff = create_staff(
            session, cipher=cipher, logins=DEMO_LOGINS, dept_ids=ref.dept_ids,
            patients=patients, rng=stream(seed, "staff"), reference_date=today,
        )  # fmt: skip
        lap("reference data and staff")
        people = build_people(patients, stream(seed, "people"), clock)
        act = build_activity(people, clock, stream(seed, "activity"))
        appts = schedule(
            act.intents, people, staff, clock, stream(seed, "schedule"),
            clinic=act.demo_clinic, death_day=act.death_day,
        )  # fmt: skip
        lap("activity and scheduling")

        # COPY runs on the session's own connection: one transaction for everything.
        raw = cast(psycopg.Connection[Any], session.connection().connection.driver_connection)
        loader = BulkLoader(raw, fast=patients >= FAST_LOAD_MIN_PATIENTS, progress=say)
        ids = loader.id_offsets(LOADED_TABLES)  # patients is empty here: its ids are 1..N
        usernames = {uid: name for uid, name in session.execute(select(User.id, User.username))}
        history = AuditHistory(
            seed=seed, clock=clock, staff=staff, usernames=usernames, patients=patients
        )
        loader.start(LOADED_TABLES)
        try:
            counts, visits = generate_and_load(
                loader, ids, seed=seed, clock=clock, ref=ref, staff=staff, people=people,
                act=act, appts=appts, cipher=cipher, lap=lap, history=history,
            )  # fmt: skip
        except BaseException:
            loader.close()
            raise
        lap("indexes, keys and statistics")
        if logins := history.last_logins():
            session.execute(update(User), logins)  # the history's sign-ins, by primary key
        say(f"producer waited {loader.wait_seconds:.1f} s for COPY")
        portal_password = DEMO_LOGINS[DEMO_PATIENT][0] if DEMO_PATIENT in DEMO_LOGINS else None
        engagement.portal_and_consultations(
            session, people=people, staff=staff, e=visits, clock=clock,
            cipher=cipher, rng=stream(seed, "portal"), portal=act.portal,
            clinic=act.demo_clinic, password=portal_password,
            death_day=act.death_day, dept_ids=ref.dept_array,
        )  # fmt: skip
        audit.record(
            session, None, "demo.seed", username="seed-demo", object_type="database",
            detail={"patients": patients, "seed": seed, "reference_date": today.isoformat(),
                    "reset": reset},
        )  # fmt: skip
        for name in _ORM_TABLES:
            table = metadata.tables[name]
            counts[name] = int(session.scalar(select(func.count()).select_from(table)) or 0)
        last_audit_id = int(session.scalar(select(func.max(AuditEvent.id))) or 0)
    lap("portal accounts and consultations")
    sealed = _seal_through(engine, last_audit_id)
    lap("audit trail sealed")
    say(f"sealed {sealed:,} audit rows")
    return SeedReport(
        patients=patients, seed=seed, reference_date=today, rows=counts,
        seconds=round(time.perf_counter() - started, 2),
        totp_secrets={u: s for u, s in staff.totp_secrets.items() if u in DEMO_PROFILES},
        phases=phases,
        copy_seconds={k: round(v, 2) for k, v in loader.copy_seconds.items()},
    )  # fmt: skip
