"""Test data builders on a real session (flushed, rolled back with the test)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cims.appointments.models import Slot
from cims.base import utcnow
from cims.billing.models import InsurancePlan, PriceItem
from cims.org.models import Department
from cims.patients.models import Patient
from cims.patients.mrn import make_mrn
from cims.security.accounts import build_actor, create_account
from cims.security.crypto import load_cipher
from cims.security.mfa import new_totp_secret
from cims.security.models import User
from cims.security.rbac import Actor

_counter = itertools.count(1)
PASSWORD = "Correct-Horse-42x"


def department(session: Session, code: str = "ENDO") -> Department:
    """A clinical department (reused if the code exists)."""
    found = session.scalar(select(Department).where(Department.code == code))
    if found:
        return found
    dep = Department(code=code, name_zh="内分泌科", name_en="Endocrinology", kind="clinical")
    session.add(dep)
    session.flush()
    return dep


def user(
    session: Session,
    role: str,
    *,
    username: str | None = None,
    totp_secret: str | None = "generate",
    departments: tuple[int, ...] = (),
    patient_id: int | None = None,
) -> User:
    """An account with one role; staff are TOTP-enrolled unless ``totp_secret`` is None."""
    name = username or f"{role}{next(_counter)}"
    secret = new_totp_secret() if totp_secret == "generate" else totp_secret
    return create_account(
        session=session,
        username=name,
        display_name=f"Test {role}",
        password=PASSWORD,
        roles=[role],
        department_ids=departments,
        totp_secret=secret if role != "patient" else None,
        cipher=load_cipher(session),
        patient_id=patient_id,
    )


def actor(session: Session, role: str, **kwargs: object) -> Actor:
    """An Actor of the given role (a fresh account)."""
    return build_actor(session, user(session, role, **kwargs))  # type: ignore[arg-type]


def patient(session: Session, **fields: object) -> Patient:
    """A minimal identified patient."""
    n = next(_counter) + 900_000
    values: dict[str, object] = {
        "mrn": make_mrn(n),
        "family_name": "张",
        "given_name": "三",
        "full_name": "张三",
        "name_initials": "zs",
        "sex": "M",
        "birth_date": dt.date(1960, 5, 1),
        "insurance_type": "urban_employee",
        "registered_at": utcnow(),
    }
    values.update(fields)
    row = Patient(**values)
    session.add(row)
    session.flush()
    return row


def money(value: str) -> Decimal:
    """Decimal from a string (never from a float)."""
    return Decimal(value)


@contextmanager
def rolled_back_session(engine: Engine) -> Iterator[Session]:
    """A session whose work, commits included, is rolled back at the end (savepoints)."""
    with engine.connect() as conn:
        outer = conn.begin()
        db = Session(bind=conn, join_transaction_mode="create_savepoint")
        try:
            yield db
        finally:
            db.close()
            outer.rollback()


def future_slot(
    session: Session, *, capacity: int = 1, hours: float = 48, doctor_id: int | None = None
) -> Slot:
    """An open slot ``hours`` from now in a clinical department."""
    dep = department(session, "ENDO")
    doctor = doctor_id or user(session, "doctor", departments=(dep.id,)).id
    start = utcnow().replace(microsecond=0) + dt.timedelta(hours=hours)
    slot = Slot(
        doctor_id=doctor,
        department_id=dep.id,
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=15),
        capacity=capacity,
    )
    session.add(slot)
    session.flush()
    return slot


def price_item(
    session: Session,
    code: str = "TEST-CONS",
    *,
    unit_price: str = "50.00",
    category: str = "consultation",
    effective_from: dt.date = dt.date(2020, 1, 1),
) -> PriceItem:
    """A catalogue price in effect from ``effective_from`` (reused if the code has one)."""
    found = session.scalar(
        select(PriceItem).where(PriceItem.code == code, PriceItem.effective_to.is_(None))
    )
    if found:
        return found
    item = PriceItem(
        code=code,
        name_zh="测试项目",
        name_en="Test item",
        category=category,
        unit="次",
        unit_price=Decimal(unit_price),
        effective_from=effective_from,
    )
    session.add(item)
    session.flush()
    return item


def insurance_plan(
    session: Session,
    insurance_type: str = "urban_employee",
    *,
    coverage: str = "0.7000",
    inpatient: str = "0.8500",
    excluded: tuple[str, ...] = ("registration",),
) -> InsurancePlan:
    """An insurance plan for a type (reused if the type has one)."""
    found = session.scalar(
        select(InsurancePlan).where(InsurancePlan.insurance_type == insurance_type)
    )
    if found:
        return found
    plan = InsurancePlan(
        insurance_type=insurance_type,
        name_zh="测试医保",
        name_en="Test plan",
        coverage_rate=Decimal(coverage),
        inpatient_coverage_rate=Decimal(inpatient),
        excluded_categories=list(excluded),
    )
    session.add(plan)
    session.flush()
    return plan


def issued_invoice(
    session: Session, *, amount: str = "100.00", patient_id: int | None = None
) -> int:
    """An issued self-pay invoice of one manual charge; returns the invoice id."""
    from cims.billing.charges import post_charge
    from cims.billing.invoices import create_invoice, issue_invoice

    cashier = actor(session, "finance")
    code = f"TEST-{amount}"
    price_item(session, code, unit_price=amount)
    pid = patient_id or patient(session, insurance_type="self_pay").id
    post_charge(
        session=session,
        actor=cashier,
        patient_id=pid,
        encounter_id=None,
        price_code=code,
        quantity=Decimal("1"),
        source_type="manual",
        source_id=None,
        service_date=dt.date.today(),
    )
    invoice = create_invoice(session=session, actor=cashier, patient_id=pid)
    issue_invoice(session=session, actor=cashier, invoice_id=invoice.invoice_id)
    return invoice.invoice_id


def fresh_totp(secret: str, last_step: int | None) -> str:
    """A TOTP code the server will accept: its step is newer than the last one used.

    Codes are single-use, so a test signing the same user in twice within 30 s waits for
    the next step (at most one step ahead of now is accepted).
    """
    import time

    import pyotp

    totp = pyotp.TOTP(secret)
    while True:
        now = time.time()
        current = int(now // totp.interval)
        step = max(current, (last_step or 0) + 1)
        if step <= current + 1:
            return totp.at(step * totp.interval)
        time.sleep((current + 1) * totp.interval - now + 0.05)
