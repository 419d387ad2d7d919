"""Post-visit surveys, patient portal accounts and online consultation threads."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any, Final

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from cims.demo import copyload as cl
from cims.demo.encounters import Encounters
from cims.demo.patients import People
from cims.demo.reasons import ER, INP, OUT
from cims.demo.scheduling import Appointments
from cims.demo.staff import DEMO_PATIENT, Staff
from cims.demo.vec import HOUR, MINUTE, Clock, IntArray, minutes
from cims.engagement.models import ConsultationMessage, ConsultationThread
from cims.patients.mrn import make_mrn
from cims.security.accounts import create_account
from cims.security.crypto import FieldCipher
from cims.security.passwords import hash_password

_PRAISE: Final = (
    "医生很耐心，讲解得很清楚。",
    "护士服务周到，态度很好。",
    "环境干净整洁。",
    "手机上就能挂号缴费，很方便。",
    "The doctor explained everything clearly.",
)
_COMPLAINTS: Final = (
    "排队等候时间太长。",
    "停车比较困难。",
    "检查结果等待时间较长。",
    "希望能多放一些预约号。",
    "Waiting time was too long.",
)
# (subject, patient's question, doctor's answer, patient's follow-up)
_THREADS: Final = (
    ("血糖控制咨询", "医生您好，最近空腹血糖在8左右，需要调整用药吗？",
     "您好，建议先记录一周的空腹和餐后血糖，复诊时带来，我们再评估是否调整剂量。",
     "好的，谢谢医生！"),
    ("检查报告解读", "医生，我的血脂报告低密度脂蛋白偏高，要紧吗？",
     "LDL略高，建议低脂饮食、规律运动，继续服用他汀，三个月后复查。", "明白了，谢谢。"),
    ("用药副作用", "吃了新开的药以后有点头晕，正常吗？",
     "部分患者初期会有轻微头晕，请注意起身放慢，若持续或加重请及时来院。", "好的，我再观察几天。"),
    ("复诊时间", "请问我下次什么时候复诊比较合适？", "建议一个月后复诊，可以在患者门户直接预约。",
     "收到，谢谢！"),
)  # fmt: skip


def surveys_table(
    e: Encounters,
    appts: Appointments,
    dept_ids: IntArray,
    clock: Clock,
    rng: np.random.Generator,
    offset: int,
) -> Any:
    """Satisfaction surveys after some visits; ratings improve over the years (about +15%)."""
    n = len(e.ids)
    share = np.select([e.kind == OUT, e.kind == INP, e.kind == ER], [0.12, 0.35, 0.05])
    sent = e.end + 2 * HOUR
    rows = np.flatnonzero(~e.open & (rng.random(n) < share) & (sent <= clock.now))
    m = len(rows)
    sent = sent[rows]
    done_at = sent + minutes(rng.uniform(60, 72 * 60, m))
    done = (rng.random(m) < 0.65) & (done_at <= clock.now)
    quality = 3.55 + 0.11 * clock.years_since_start(sent)
    a = e.appointment[rows]
    wait = np.where(
        a >= 0,
        (appts.seen[np.maximum(a, 0)] - appts.arrived[np.maximum(a, 0)]).astype(np.float64) / 60,
        25.0,
    )
    wait = np.nan_to_num(wait, nan=25.0)

    def rating(shift: Any) -> Any:
        return np.clip(np.round(quality + shift + rng.normal(0, 0.7, m)), 1, 5).astype(np.int64)

    waiting = rating(0.4 - 0.02 * (wait - 20))
    recommend = np.clip(np.round(2 * quality - 0.5 + rng.normal(0, 1.6, m)), 0, 10).astype(np.int64)
    has_comment = done & (rng.random(m) < 0.15)
    pool = [*_PRAISE, *_COMPLAINTS]
    pick = np.where(
        recommend >= 8,
        rng.integers(0, len(_PRAISE), m),
        len(_PRAISE) + rng.integers(0, len(_COMPLAINTS), m),
    )
    missing = ~done
    return cl.table(
        {
            "id": cl.ints(offset + 1 + np.arange(m)),
            "patient_id": cl.ints(e.patient[rows] + 1),
            "encounter_id": cl.ints(e.ids[rows]),
            "department_id": cl.ints(dept_ids[e.dept[rows]]),
            "sent_at": cl.times(clock, sent),
            "completed_at": cl.times(clock, done_at, mask=missing),
            "rating_waiting": cl.ints(waiting, mask=missing),
            "rating_doctor": cl.ints(rating(0.3), mask=missing),
            "rating_environment": cl.ints(rating(0.0), mask=missing),
            "rating_billing": cl.ints(rating(-0.1), mask=missing),
            "recommend": cl.ints(recommend, mask=missing),
            "comment": cl.texts(
                [
                    pool[p] if c else None
                    for p, c in zip(pick.tolist(), has_comment.tolist(), strict=True)
                ]
            ),
        }
    )


def portal_and_consultations(
    session: Session,
    *,
    people: People,
    staff: Staff,
    e: Encounters,
    clock: Clock,
    cipher: FieldCipher,
    rng: np.random.Generator,
    portal: int,
    clinic: IntArray,
    password: str | None,
    death_day: np.ndarray,
    dept_ids: IntArray,
) -> dict[str, int]:
    """Portal accounts (the demo patient and a few others) and their consultation threads."""
    alive = np.isnat(death_day) & ~people.newborn & ~people.unidentified
    adults = np.flatnonzero(alive & (people.age_at(np.full(people.n, clock.today)) >= 18))
    others = adults[~np.isin(adults, np.append(clinic, portal))]
    k = min(40, max(5, people.n // 50), len(others))
    picked = rng.choice(others, size=k, replace=False).tolist() if k else []
    # A few of the demo doctor's patients write too; tiny hospitals may overlap, so dedupe.
    chosen = [r for r in dict.fromkeys([*clinic[:3].tolist(), *picked]) if r != portal]
    shared = hash_password(secrets.token_urlsafe(32))
    users: list[tuple[int, int]] = []  # (patient row, user id)
    if password is not None:
        user = create_account(
            session=session,
            username=DEMO_PATIENT,
            display_name=str(people.full[portal]),
            password=password,
            roles=["patient"],
            patient_id=portal + 1,
        )
        users.append((portal, user.id))
    for row in chosen:
        user = create_account(
            session=session,
            username=f"p{make_mrn(row + 1)}",
            display_name=str(people.full[row]),
            password="",
            roles=["patient"],
            patient_id=row + 1,
            password_hash=shared,
        )
        users.append((row, user.id))
    # Encounters are in time order, so the last one written per patient wins.
    mine = np.flatnonzero(np.isin(e.patient, [row for row, _ in users]))
    last_doctor: dict[int, tuple[int, int | None]] = {
        int(p): (int(d), int(k))
        for p, d, k in zip(e.patient[mine], e.doctor[mine], e.dept[mine], strict=True)
    }
    next_id = (
        int(session.scalar(select(func.coalesce(func.max(ConsultationMessage.id), 0))) or 0) + 1
    )
    demo_doctor = int(staff.doctor_id[staff.demo_doctor])
    threads = messages = 0
    for i, (row, user_id) in enumerate(users):
        doctor, dept = last_doctor.get(row, (demo_doctor, None))
        if row in clinic.tolist():
            doctor = demo_doctor
        subject, question, answer, thanks = _THREADS[i % len(_THREADS)]
        status = (
            "open"
            if i % 3 == 1 or row in clinic.tolist()
            else ("closed" if i % 3 == 2 else "answered")
        )
        opened = clock.now - (HOUR * int(rng.integers(2, 24 * 20)))
        script = [(user_id, question)]
        if status != "open":
            script.append((doctor, answer))
        if status == "closed":
            script.append((user_id, thanks))
        times = [opened + MINUTE * int(60 * j * rng.uniform(1, 12)) for j in range(len(script))]
        times = [min(t, clock.now) for t in times]
        utc = [_utc(clock, t) for t in times]
        thread = ConsultationThread(
            patient_id=row + 1, doctor_id=doctor,
            department_id=None if dept is None else int(dept_ids[dept]),
            subject=subject, status=status, opened_at=utc[0],
            first_response_at=utc[1] if len(utc) > 1 else None, last_message_at=utc[-1],
            closed_at=utc[-1] if status == "closed" else None,
        )  # fmt: skip
        session.add(thread)
        session.flush()
        threads += 1
        for (sender, body), at in zip(script, utc, strict=True):
            sealed = cipher.encrypt(
                body, table="consultation_messages", column="body", row_id=next_id
            )
            session.add(
                ConsultationMessage(
                    id=next_id,
                    thread_id=thread.id,
                    sender_user_id=sender,
                    body_enc=sealed,
                    sent_at=at,
                    read_at=at if sender == user_id and status != "open" else None,
                )
            )
            next_id += 1
            messages += 1
    session.flush()
    session.execute(
        text("SELECT setval(pg_get_serial_sequence('consultation_messages', 'id'), :v, false)"),
        {"v": next_id},
    )
    return {
        "portal_accounts": len(users),
        "consultation_threads": threads,
        "consultation_messages": messages,
    }


def _utc(clock: Clock, local: np.datetime64) -> dt.datetime:
    """A local datetime64 as an aware UTC datetime."""
    seconds = int(clock.to_utc(np.array([local], "datetime64[s]"))[0].astype(np.int64))
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
