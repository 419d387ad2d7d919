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
