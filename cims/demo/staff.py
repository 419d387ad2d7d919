"""Staff of the demo hospital: the fixed demo logins plus generated doctors, nurses and clerks."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from pypinyin import lazy_pinyin
from sqlalchemy.orm import Session

from cims.demo.identities import generate_people
from cims.demo.vec import BoolArray, IntArray
from cims.demo.vocab import CLINIC_DEPTS, DEPT_INDEX, DOCTOR_DEPTS, TITLES, WARD_DEPTS
from cims.security.accounts import create_account
from cims.security.crypto import FieldCipher
from cims.security.mfa import new_totp_secret
from cims.security.passwords import hash_password

# username -> (display name, department code or None, title or None)
DEMO_PROFILES: Final[dict[str, tuple[str, str | None, str | None]]] = {
    "admin": ("周明 (系统管理员)", None, None),
    "doctor": ("李文华", "ENDO", "主任医师"),
    "nurse": ("张丽", "ENDO", "主管护师"),
    "registrar": ("陈静", None, None),
    "finance": ("刘芳", "FIN", None),
    "manager": ("赵强", None, None),
    "analyst": ("孙悦", None, None),
}
DEMO_DOCTOR: Final = "doctor"
DEMO_CASHIER: Final = "finance"
DEMO_PATIENT: Final = "patient"

AM, PM = 0, 1
SESSION_START_MIN: Final = (8 * 60, 13 * 60 + 30)  # local clock, minutes after midnight
SESSION_SLOTS: Final = (16, 14)  # 08:00-12:00 and 13:30-17:00 in 15-minute slots
SLOT_MINUTES: Final = 15


@dataclass
class Staff:
    """Who works here, as arrays the generators can index."""

    doctor_id: IntArray  # user ids
    doctor_dept: IntArray  # index into vocab.DEPARTMENTS
    doctor_title: IntArray  # index into vocab.TITLES
    works: BoolArray  # doctor x weekday x session: the weekly clinic timetable
    nurse_id: IntArray
    nurse_dept: IntArray
    registrar_id: IntArray
    cashier_id: IntArray
    demo_ids: dict[str, int] = field(default_factory=dict)
    totp_secrets: dict[str, str] = field(default_factory=dict)

    @property
    def demo_doctor(self) -> int:
        """Position of the demo doctor in the doctor arrays."""
        return int(np.flatnonzero(self.doctor_id == self.demo_ids[DEMO_DOCTOR])[0])

    def doctors_of(self, dept_code: str) -> IntArray:
        """Positions of the doctors of one department."""
        return np.flatnonzero(self.doctor_dept == DEPT_INDEX[dept_code]).astype(np.int64)


def _usernames(names: list[str], taken: set[str]) -> list[str]:
    """Pinyin usernames (李文华 -> liwenhua), numbered on collision."""
    out = []
    for name in names:
        base = "".join(lazy_pinyin(name, errors="ignore")).lower() or "staff"
        base = "".join(ch for ch in base if ch.isascii() and ch.isalnum()) or "staff"
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}{n}"
        taken.add(candidate)
        out.append(candidate)
    return out


def _timetable(position: int, demo: bool, today_weekday: int) -> BoolArray:
    """Weekly sessions of a doctor: three mornings, two afternoons, some Saturday mornings."""
    works = np.zeros((7, 2), bool)
    for m in range(3):
        works[(position + m) % 5, AM] = True
    for m in range(2):
        works[(position + 3 + m) % 5, PM] = True
    works[5, AM] = position % 3 == 0
    if demo:
        # The demo doctor runs a morning clinic every day, so "today" always has one.
        works[:6, AM] = True
        works[today_weekday, AM] = True
        works[1, PM] = works[3, PM] = True
    return works


def create_staff(
    session: Session,
    *,
    cipher: FieldCipher,
    logins: Mapping[str, tuple[str, str]],
    dept_ids: Mapping[str, int],
    patients: int,
    rng: np.random.Generator,
    reference_date: dt.date,
) -> Staff:
    """Create the demo logins and the generated staff accounts (all TOTP-enrolled)."""
    per_dept = max(3, round(patients / 20_000))
    nurses_per_ward = max(2, round(patients / 40_000))
    clerks = max(3, round(patients / 50_000))
    today_weekday = reference_date.weekday()
    totp: dict[str, str] = {}
    demo_ids: dict[str, int] = {}

    for username, (password, role) in logins.items():
        if role == "patient":
            continue  # linked to a generated patient once patients exist
        display, dept, job_title = DEMO_PROFILES.get(username, (username, None, None))
        secret = new_totp_secret()
        user = create_account(
            session=session, username=username, display_name=display, password=password,
            roles=[role], department_ids=[dept_ids[dept]] if dept else [], totp_secret=secret,
            cipher=cipher, title=job_title,
        )  # fmt: skip
        demo_ids[username] = user.id
        totp[username] = secret

    # One random, never-disclosed password hashed once: generated staff cannot sign in
    # until an admin resets them, and seeding a thousand accounts stays fast.
    shared_hash = hash_password(secrets.token_urlsafe(32))
    plan: list[tuple[str, str, int, int]] = []  # (role, dept code, position, title)
    for dept in DOCTOR_DEPTS:
        for pos in range(per_dept):
            title = pos if pos < 3 else int(rng.choice(4, p=[0.1, 0.2, 0.4, 0.3]))
            plan.append(("doctor", dept, pos, title))
    for dept in (*WARD_DEPTS, "ER"):
        plan.extend(("nurse", dept, pos, -1) for pos in range(nurses_per_ward))
    plan.extend(("registrar", "", pos, -1) for pos in range(clerks))
    plan.extend(("finance", "FIN", pos, -1) for pos in range(clerks))
    people = generate_people(len(plan), rng, reference_date=reference_date)
    names = [str(n) for n in people["full_name"]]
    taken = set(logins)
    usernames = _usernames(names, taken)

    doctor_id, doctor_dept, doctor_title, works = [], [], [], []
    nurse_id, nurse_dept = [], []
    registrar_id = [demo_ids["registrar"]] if "registrar" in demo_ids else []
    cashier_id = [demo_ids[DEMO_CASHIER]] if DEMO_CASHIER in demo_ids else []
    if "nurse" in demo_ids:
        nurse_id.append(demo_ids["nurse"])
        nurse_dept.append(DEPT_INDEX["ENDO"])
    for (role, dept, pos, title), name, username in zip(plan, names, usernames, strict=True):
        demo_doctor = role == "doctor" and dept == "ENDO" and pos == 0 and DEMO_DOCTOR in demo_ids
        if demo_doctor:
            user_id = demo_ids[DEMO_DOCTOR]  # the demo login is this department's chief
        else:
            secret = new_totp_secret()
            user = create_account(
                session=session, username=username, display_name=name, password="",
                roles=[role], department_ids=[dept_ids[dept]] if dept else [],
                totp_secret=secret, cipher=cipher, password_hash=shared_hash,
                title=TITLES[title] if role == "doctor" else ("护师" if role == "nurse" else None),
            )  # fmt: skip
            user_id = user.id
        if role == "doctor":
            doctor_id.append(user_id)
            doctor_dept.append(DEPT_INDEX[dept])
            doctor_title.append(0 if demo_doctor else title)
            clinic = dept in CLINIC_DEPTS
            table = _timetable(pos, demo_doctor, today_weekday) if clinic else np.zeros((7, 2))
            works.append(table.astype(bool))
        elif role == "nurse":
            nurse_id.append(user_id)
            nurse_dept.append(DEPT_INDEX[dept])
        elif role == "registrar":
            registrar_id.append(user_id)
        else:
            cashier_id.append(user_id)
    session.flush()
    return Staff(
        doctor_id=np.array(doctor_id, np.int64),
        doctor_dept=np.array(doctor_dept, np.int64),
        doctor_title=np.array(doctor_title, np.int64),
        works=np.array(works, bool),
        nurse_id=np.array(nurse_id, np.int64),
        nurse_dept=np.array(nurse_dept, np.int64),
        registrar_id=np.array(registrar_id, np.int64),
        cashier_id=np.array(cashier_id, np.int64),
        demo_ids=demo_ids,
        totp_secrets=totp,
    )
