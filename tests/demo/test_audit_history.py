"""The demo's audit history: real, sealed, consistent with the data, and never sensitive."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.orm import Session

from cims.config import get_settings
from cims.demo.seed import DEMO_LOGINS, seed_demo
from cims.security.accounts import build_actor
from cims.security.audit_chain import verify_chain
from cims.security.crypto import load_cipher
from cims.security.models import User
from cims.security.reviews import security_report

REFERENCE = dt.date(2026, 3, 12)
PATIENTS = 300
SEED = 5
NOW = dt.datetime.combine(REFERENCE, dt.time(9), ZoneInfo(get_settings().timezone))
HISTORIC = "action <> 'demo.seed'"
FAMILIES = (
    "auth.sign_in", "auth.password", "auth.totp", "auth.locked", "admin.unlock",
    "records.view_summary", "records.create_encounter", "records.add_diagnosis",
    "records.prescribe", "records.record_vitals", "patients.register", "appointments.book",
    "billing.take_payment", "clinical.break_glass", "clinical.access",
    "audit.review_break_glass",
)  # fmt: skip


def _seed(fresh_database: Callable[[str], str], name: str) -> Iterator[Engine]:
    engine = create_engine(fresh_database(name))
    seed_demo(engine, patients=PATIENTS, seed=SEED, reference_date=REFERENCE)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def db(fresh_database: Callable[[str], str]) -> Iterator[Engine]:
    yield from _seed(fresh_database, "audit_a")


def rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params).all())


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def test_chain_is_sealed_and_verifies(db: Engine) -> None:
    result = verify_chain(db)
    assert result.ok, result.detail
    assert result.unsealed_rows == 0
    assert result.rows_checked == scalar(db, "SELECT count(*) FROM audit_log") > 1000


def test_every_action_family_is_there(db: Engine) -> None:
    found = {a for (a,) in rows(db, "SELECT DISTINCT action FROM audit_log")}
    assert set(FAMILIES) <= found
    outcomes = dict(rows(db, "SELECT action, min(outcome) FROM audit_log GROUP BY 1"))
    for action in ("auth.password", "auth.totp", "clinical.access"):
        assert outcomes[action] == "denied"
    # A few audit rows per encounter of the audited window, not dozens.
    per_encounter = scalar(
        db,
        "SELECT count(*)::float / (SELECT count(*) FROM encounters WHERE started_at >= "
        f"(SELECT min(occurred_at) FROM audit_log)) FROM audit_log WHERE {HISTORIC}",
    )
    assert 3 < per_encounter < 15


def test_history_precedes_now_and_ids_follow_time(db: Engine) -> None:
    assert scalar(db, f"SELECT max(occurred_at) FROM audit_log WHERE {HISTORIC}") < NOW
    assert (
        scalar(
            db,
            "SELECT count(*) FROM audit_log a JOIN audit_log b ON b.id = a.id + 1 "
            "WHERE b.occurred_at < a.occurred_at",
        )
        == 0
    )


def test_rows_name_real_patients_and_objects(db: Engine) -> None:
    assert (
        scalar(
            db,
            "SELECT count(*) FROM audit_log a WHERE patient_id IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM patients p WHERE p.id = a.patient_id)",
        )
        == 0
    )
    # Each audited change sits at its row's own time, by the person the row names.
    checks = {
        "records.create_encounter": ("encounters", "started_at", "attending_id"),
        "records.add_diagnosis": ("diagnoses", "diagnosed_at", "diagnosed_by_id"),
        "records.prescribe": ("prescriptions", "prescribed_at", "prescriber_id"),
        "appointments.book": ("appointments", "booked_at", "created_by_id"),
        "billing.take_payment": ("payments", "received_at", "cashier_id"),
        "clinical.break_glass": ("break_glass_grants", "granted_at", "user_id"),
    }
    for action, (table, at, actor) in checks.items():
        mismatched = scalar(
            db,
            f"SELECT count(*) FROM audit_log a LEFT JOIN {table} r ON r.id = a.object_id::bigint "
            f"WHERE a.action = :action AND (r.id IS NULL OR r.{at} <> a.occurred_at "
            f"OR r.{actor} <> a.actor_id OR r.patient_id <> a.patient_id)",
            action=action,
        )
        assert mismatched == 0, action
    # Vitals are audited when the first one is taken; the record is opened as the visit starts.
    assert (
        scalar(
            db,
            "SELECT count(*) FROM audit_log a JOIN encounters e ON e.id = a.object_id::bigint "
            "WHERE a.action = 'records.record_vitals' AND a.occurred_at <> (SELECT "
            "min(o.observed_at) FROM observations o WHERE o.encounter_id = e.id "
            "AND o.category = 'vital')",
        )
        == 0
    )
    assert (
        scalar(
            db,
            "SELECT count(*) FROM audit_log a JOIN encounters e ON e.id = a.object_id::bigint "
            "WHERE a.action = 'records.create_encounter' AND NOT EXISTS (SELECT 1 FROM audit_log v "
            "WHERE v.action = 'records.view_summary' AND v.actor_id = e.attending_id "
            "AND v.patient_id = e.patient_id AND v.occurred_at BETWEEN e.started_at "
            "AND e.started_at + interval '5 minutes')",
        )
        == 0
    )


def test_staff_sign_in_before_they_act(db: Engine) -> None:
    tz = get_settings().timezone
    unsigned = scalar(
        db,
        "SELECT count(*) FROM audit_log a WHERE a.actor_id IS NOT NULL AND a.action <> "
        "'auth.sign_in' AND NOT EXISTS (SELECT 1 FROM audit_log s WHERE s.action = "
        "'auth.sign_in' AND s.actor_id = a.actor_id AND s.occurred_at <= a.occurred_at "
        "AND (s.occurred_at AT TIME ZONE :tz)::date = (a.occurred_at AT TIME ZONE :tz)::date) "
        f"AND a.{HISTORIC}",
        tz=tz,
    )
    assert unsigned == 0
    sessions = scalar(
        db,
        "SELECT count(*) FROM audit_log a JOIN auth_sessions s ON s.id::text = a.object_id "
        "AND s.user_id = a.actor_id AND s.created_at = a.occurred_at "
        "WHERE a.action = 'auth.sign_in'",
    )
    assert sessions == scalar(db, "SELECT count(*) FROM audit_log WHERE action = 'auth.sign_in'")
    assert (
        scalar(
            db,
            "SELECT count(*) FROM users u WHERE u.last_login_at IS DISTINCT FROM (SELECT "
            "max(occurred_at) FROM audit_log WHERE action = 'auth.sign_in' AND actor_id = u.id)",
        )
        == 0
    )


def test_sign_in_failures_match_the_audit(db: Engine) -> None:
    attempts = rows(
        db,
        "SELECT username, attempted_at FROM sign_in_attempts "
        "WHERE NOT success AND stage = 'password' ORDER BY 2, 1",
    )
    audited = rows(
        db,
        "SELECT actor_username, occurred_at FROM audit_log WHERE action = 'auth.password' "
        "AND outcome = 'denied' ORDER BY 2, 1",
    )
    assert attempts == audited and len(attempts) > 0
    assert scalar(db, "SELECT count(*) FROM sign_in_attempts WHERE NOT success AND stage = "
                  "'totp'") == scalar(db, "SELECT count(*) FROM audit_log WHERE action = "
                                          "'auth.totp'")  # fmt: skip
    # The published demo logins never fail in history: nothing may lock them out.
    failed = {u for (u,) in rows(db, "SELECT username FROM sign_in_attempts WHERE NOT success")}
    assert not failed & set(DEMO_LOGINS)
    assert scalar(db, "SELECT count(*) FROM users WHERE locked_until IS NOT NULL") == 0


def test_refusals_are_outside_the_care_relationship(db: Engine) -> None:
    in_care = scalar(
        db,
        "SELECT count(*) FROM audit_log a WHERE a.action = 'clinical.access' AND EXISTS ("
        "SELECT 1 FROM encounters e JOIN user_departments d ON d.department_id = e.department_id "
        "WHERE d.user_id = a.actor_id AND e.patient_id = a.patient_id "
        "AND e.started_at BETWEEN a.occurred_at - interval '90 days' AND a.occurred_at)",
    )
    assert in_care == 0
    # Each break-glass follows such a refusal by the same clinician, and the record is read.
    for action in ("clinical.access", "records.view_summary"):
        assert (
            scalar(
                db,
                "SELECT count(*) FROM audit_log g WHERE g.action = 'clinical.break_glass' "
                "AND NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.action = :action "
                "AND a.actor_id = g.actor_id AND a.patient_id = g.patient_id "
                "AND a.occurred_at BETWEEN g.occurred_at - interval '2 minutes' "
                "AND g.occurred_at + interval '2 minutes')",
                action=action,
            )
            == 0
        )


def test_break_glass_review_queue(db: Engine) -> None:
    grants = rows(db, "SELECT reviewed_at, review_outcome, granted_at FROM break_glass_grants")
    pending = [g for g in grants if g.reviewed_at is None]
    assert 1 <= len(pending) <= 2
    assert all(g.granted_at > NOW - dt.timedelta(days=10) for g in pending)
    reviewed = [g for g in grants if g.reviewed_at is not None]
    assert reviewed and all(g.review_outcome == "justified" for g in reviewed)
    assert all(g.granted_at < g.reviewed_at < NOW for g in reviewed)


def test_no_identifiers_in_audit_detail(db: Engine) -> None:
    with Session(db) as session:
        cipher = load_cipher(session)
        secrets: list[str] = []
        for pid, nid, phone in session.execute(
            text("SELECT id, national_id_enc, phone_enc FROM patients ORDER BY id LIMIT 100")
        ):
            if nid is not None:
                secrets.append(
                    cipher.decrypt_text(nid, table="patients", column="national_id", row_id=pid)
                )
            if phone is not None:
                secrets.append(
                    cipher.decrypt_text(phone, table="patients", column="phone", row_id=pid)
                )
    assert len(secrets) > 100
    details = [d for (d,) in rows(db, "SELECT DISTINCT detail::text FROM audit_log") if d]
    assert details and not [s for s in secrets for d in details if s in d]
    # Only small fixed vocabularies: no long digit runs (ids, phones) at all.
    assert not [d for d in details if any(len(run) >= 7 for run in _digit_runs(d))]


def _digit_runs(value: str) -> list[str]:
    return "".join(c if c.isdigit() else " " for c in value).split()


def test_security_report_has_something_to_show(db: Engine) -> None:
    with Session(db) as session:
        admin = session.scalar(select(User).where(User.username == "admin"))
        assert admin is not None
        report = security_report(
            session=session,
            actor=build_actor(session, admin),
            start=NOW - dt.timedelta(days=5 * 366),
            end=NOW + dt.timedelta(days=1),
        )
        session.rollback()
    assert report.failed_sign_ins > 0
    assert report.lockouts > 0
    assert report.break_glass_uses > 0
    assert report.break_glass_unreviewed >= 1
    assert report.denied_actions > report.failed_sign_ins


def test_same_seed_gives_the_same_trail(db: Engine, fresh_database: Callable[[str], str]) -> None:
    queries = [
        "SELECT occurred_at, actor_id, actor_username, actor_role, action, outcome, patient_id, "
        f"object_type, object_id, detail::text FROM audit_log WHERE {HISTORIC} ORDER BY id",
        "SELECT username, user_id, attempted_at, success, stage, reason FROM sign_in_attempts "
        "ORDER BY id",
        "SELECT * FROM break_glass_grants ORDER BY id",
        "SELECT * FROM auth_sessions ORDER BY created_at, id",
    ]
    for twin in _seed(fresh_database, "audit_b"):
        for sql in queries:
            assert rows(db, sql) == rows(twin, sql), sql


def test_reset_keeps_one_verifiable_chain(fresh_database: Callable[[str], str]) -> None:
    engine = create_engine(fresh_database("audit_reset"))
    try:
        seed_demo(engine, patients=80, seed=2, reference_date=REFERENCE)
        first = scalar(engine, "SELECT count(*) FROM audit_log")
        seed_demo(engine, patients=80, seed=2, reference_date=REFERENCE, reset=True)
        # The first trail survives the reset (append-only); the second is sealed after it.
        assert scalar(engine, "SELECT count(*) FROM audit_log") == 2 * first
        result = verify_chain(engine)
        assert result.ok and result.unsealed_rows == 0 and result.rows_checked == 2 * first
    finally:
        engine.dispose()
