"""The demo hospital seed: deterministic, valid, consistent, and fast enough at scale."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from cims.config import get_settings
from cims.demo.seed import DEMO_LOGINS, DemoDataExists, SeedReport, seed_demo
from cims.patients.mrn import is_valid_mrn
from cims.patients.resident_id import validate_mobile, validate_resident_id
from cims.security.crypto import load_cipher
from cims.security.passwords import verify_password

REFERENCE = dt.date(2026, 3, 12)  # a Thursday
PATIENTS = 300
SEED = 7
TZ = get_settings().timezone


def _seeded(
    fresh_database: Callable[[str], str], name: str, **kwargs: Any
) -> Iterator[tuple[Engine, SeedReport]]:
    engine = create_engine(fresh_database(name))
    report = seed_demo(engine, patients=PATIENTS, seed=SEED, reference_date=REFERENCE, **kwargs)
    yield engine, report
    engine.dispose()


@pytest.fixture(scope="module")
def seeded(fresh_database: Callable[[str], str]) -> Iterator[tuple[Engine, SeedReport]]:
    yield from _seeded(fresh_database, "seed_a")


@pytest.fixture(scope="module")
def twin(fresh_database: Callable[[str], str]) -> Iterator[tuple[Engine, SeedReport]]:
    yield from _seeded(fresh_database, "seed_b")


@pytest.fixture(scope="module")
def db(seeded: tuple[Engine, SeedReport]) -> Engine:
    return seeded[0]


def rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params).all())


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def local_day(column: str) -> str:
    return f"({column} AT TIME ZONE '{TZ}')::date"


def test_report_counts_match_the_database(seeded: tuple[Engine, SeedReport]) -> None:
    engine, report = seeded
    assert report.rows["patients"] == PATIENTS
    for table in ("encounters", "observations", "charges", "payments", "appointments"):
        assert report.rows[table] == scalar(engine, f"SELECT count(*) FROM {table}") > 0
    assert report.seconds > 0
    # Several years of history before the reference date, nothing clinical after "now".
    first = scalar(engine, f"SELECT min({local_day('started_at')}) FROM encounters")
    assert (REFERENCE - first).days > 4 * 365
    assert scalar(engine, f"SELECT max({local_day('started_at')}) FROM encounters") <= REFERENCE
    assert scalar(engine, f"SELECT max({local_day('scheduled_at')}) FROM appointments") <= (
        REFERENCE + dt.timedelta(days=14)
    )


def test_same_seed_gives_the_same_hospital(
    seeded: tuple[Engine, SeedReport], twin: tuple[Engine, SeedReport]
) -> None:
    queries = [
        "SELECT id, mrn, full_name, sex, birth_date, insurance_type FROM patients ORDER BY id",
        "SELECT patient_id, count(*) FROM encounters GROUP BY 1 ORDER BY 1",
        "SELECT sum(amount), sum(insurance_amount), sum(patient_amount) FROM charges",
        "SELECT status, count(*), sum(paid_amount) FROM invoices GROUP BY 1 ORDER BY 1",
        "SELECT code, sum(value_num) FROM observations GROUP BY 1 ORDER BY 1",
        "SELECT status, count(*) FROM appointments GROUP BY 1 ORDER BY 1",
    ]
    for sql in queries:
        assert rows(seeded[0], sql) == rows(twin[0], sql), sql
    assert seeded[1].rows == twin[1].rows


def test_sensitive_fields_decrypt_and_validate(db: Engine) -> None:
    with Session(db) as session:
        cipher = load_cipher(session)
        patients = session.execute(
            text(
                "SELECT id, full_name, sex, birth_date, id_type, national_id_enc, "
                "national_id_bidx, phone_enc, phone_bidx, name_phone4_bidx, "
                "emergency_contact_enc FROM patients ORDER BY id"
            )
        ).all()
    with_id = 0
    for p in patients:
        if p.id_type != "resident_id":
            assert p.national_id_enc is None
            continue
        with_id += 1
        rid = cipher.decrypt_text(
            p.national_id_enc, table="patients", column="national_id", row_id=p.id
        )
        assert validate_resident_id(rid, birth_date=p.birth_date, sex=p.sex, today=REFERENCE) == []
        assert cipher.blind_index(rid, purpose="national_id") == p.national_id_bidx
        phone = cipher.decrypt_text(p.phone_enc, table="patients", column="phone", row_id=p.id)
        assert validate_mobile(phone) == []
        assert cipher.blind_index(phone, purpose="phone") == p.phone_bidx
        assert p.name_phone4_bidx == cipher.blind_index(
            p.full_name + phone[-4:], purpose="name_phone4"
        )
        contact = json.loads(
            cipher.decrypt_text(
                p.emergency_contact_enc, table="patients", column="emergency_contact", row_id=p.id
            )
        )
        assert set(contact) == {"name", "relation", "phone"}
    assert with_id >= PATIENTS - 10


def test_mrns_are_valid_and_unique(db: Engine) -> None:
    mrns = [r.mrn for r in rows(db, "SELECT mrn FROM patients")]
    assert len(mrns) == len(set(mrns)) == PATIENTS
    assert all(is_valid_mrn(m) for m in mrns)


def test_special_patients(db: Engine) -> None:
    unknown = rows(db, "SELECT * FROM patients WHERE is_unidentified")
    assert unknown and all(p.temporary_label and p.national_id_enc is None for p in unknown)
    babies = rows(
        db, "SELECT c.birth_date, m.sex FROM patients c JOIN patients m ON m.id = c.mother_id"
    )
    assert babies and all(sex == "F" and (REFERENCE - born).days < 200 for born, sex in babies)
    assert (
        scalar(
            db,
            "SELECT count(*) FROM encounters e JOIN patients p ON p.id = e.patient_id "
            f"WHERE p.death_date IS NOT NULL AND {local_day('e.started_at')} > p.death_date",
        )
        == 0
    )


def test_bookkeeping_invariants(db: Engine) -> None:
    assert (
        scalar(
            db,
            "SELECT count(*) FROM slots s WHERE booked_count <> (SELECT count(*) "
            "FROM appointments a WHERE a.slot_id = s.id "
            "AND a.status IN ('booked', 'checked_in', 'seen'))",
        )
        == 0
    )
    assert scalar(db, "SELECT count(*) FROM slots WHERE booked_count > capacity") == 0
    assert (
        scalar(db, "SELECT count(*) FROM charges WHERE amount <> insurance_amount + patient_amount")
        == 0
    )
    assert (
        scalar(
            db,
            "SELECT count(*) FROM invoices i WHERE (i.total_amount, i.insurance_amount, "
            "i.patient_amount) <> (SELECT coalesce(sum(amount), 0), "
            "coalesce(sum(insurance_amount), 0), coalesce(sum(patient_amount), 0) "
            "FROM invoice_lines l WHERE l.invoice_id = i.id)",
        )
        == 0
    )
    assert (
        scalar(
            db,
            "SELECT count(*) FROM invoices i WHERE paid_amount <> (SELECT coalesce(sum(amount), 0) "
            "FROM payments p WHERE p.invoice_id = i.id AND p.status = 'succeeded')",
        )
        == 0
    )
    # Past charges carry the price in force on their service date.
    assert (
        scalar(
            db,
            "SELECT count(*) FROM charges c JOIN price_items p ON p.id = c.price_item_id "
            "WHERE c.unit_price <> p.unit_price OR c.service_date < p.effective_from "
            "OR (p.effective_to IS NOT NULL AND c.service_date >= p.effective_to)",
        )
        == 0
    )
    assert scalar(db, "SELECT count(DISTINCT price_item_id) FROM charges c JOIN price_items p "
                  "ON p.id = c.price_item_id WHERE p.effective_to IS NOT NULL") > 0  # fmt: skip
    # A bed holds one patient at a time.
    assert (
        scalar(
            db,
            "SELECT count(*) FROM bed_assignments a JOIN bed_assignments b ON a.bed_id = b.bed_id "
            "AND a.id < b.id AND tstzrange(a.start_at, coalesce(a.end_at, 'infinity')) && "
            "tstzrange(b.start_at, coalesce(b.end_at, 'infinity'))",
        )
        == 0
    )
    assert (
        scalar(
            db,
            "SELECT count(*) FROM encounters WHERE (ended_at IS NULL) <> (status = 'open') "
            "OR (ended_at IS NULL AND encounter_type <> 'inpatient')",
        )
        == 0
    )


def test_demo_doctor_has_a_full_clinic_today(db: Engine) -> None:
    today = rows(
        db,
        "SELECT a.status, a.patient_id FROM appointments a JOIN users u ON u.id = a.doctor_id "
        f"WHERE u.username = 'doctor' AND {local_day('a.scheduled_at')} = :day "
        "AND a.status <> 'cancelled'",
        day=REFERENCE,
    )
    statuses = [r.status for r in today]
    assert len(today) >= 12
    assert {"seen", "checked_in", "booked"} <= set(statuses)
    patients = [r.patient_id for r in today]
    diabetic = scalar(
        db,
        "SELECT count(DISTINCT patient_id) FROM problems WHERE code = 'E11.9' "
        "AND patient_id = ANY(:ids)",
        ids=patients,
    )
    assert diabetic >= len(patients) - 2
    hba1c = scalar(
        db, "SELECT count(*) FROM observations WHERE code = '4548-4' AND patient_id = ANY(:ids)",
        ids=patients,
    )  # fmt: skip
    assert hba1c >= len(patients)


def test_demo_logins(db: Engine) -> None:
    users = {
        r.username: r
        for r in rows(
            db,
            "SELECT u.username, u.password_hash, u.mfa_enrolled_at, u.patient_id, "
            "r.code AS role FROM users u JOIN user_roles ur ON ur.user_id = u.id "
            "JOIN roles r ON r.id = ur.role_id",
        )
    }
    for username, (password, role) in DEMO_LOGINS.items():
        user = users[username]
        assert user.role == role
        assert verify_password(password, user.password_hash)
        assert (user.mfa_enrolled_at is None) == (role == "patient")
    staff_without_mfa = scalar(
        db, "SELECT count(*) FROM users WHERE kind = 'staff' AND mfa_enrolled_at IS NULL"
    )
    assert staff_without_mfa == 0
    portal = users["patient"].patient_id
    assert scalar(db, "SELECT count(*) FROM encounters WHERE patient_id = :p", p=portal) >= 2
    assert scalar(
        db,
        "SELECT count(*) FROM appointments WHERE patient_id = :p AND status = 'booked' "
        f"AND {local_day('scheduled_at')} > :day",
        p=portal, day=REFERENCE,
    ) >= 1  # fmt: skip
    assert scalar(
        db, "SELECT count(*) FROM invoices WHERE patient_id = :p AND paid_amount < patient_amount",
        p=portal,
    ) >= 1  # fmt: skip
    methods = rows(
        db,
        "SELECT DISTINCT p.method FROM payments p JOIN users u ON u.id = p.cashier_id "
        f"WHERE u.username = 'finance' AND {local_day('p.received_at')} = :day",
        day=REFERENCE,
    )
    assert len(methods) >= 3


def test_refuses_to_seed_twice_unless_reset(fresh_database: Callable[[str], str]) -> None:
    engine = create_engine(fresh_database("seed_reset"))
    try:
        first = seed_demo(engine, patients=120, seed=3, reference_date=REFERENCE)
        with pytest.raises(DemoDataExists):
            seed_demo(engine, patients=120, seed=3, reference_date=REFERENCE)
        again = seed_demo(engine, patients=120, seed=3, reference_date=REFERENCE, reset=True)
        assert again.rows == first.rows
        assert scalar(engine, "SELECT min(id) FROM patients") == 1
        assert scalar(engine, "SELECT count(*) FROM roles") >= 8
        # The append-only audit trail survives the reset and records both seeds.
        assert scalar(engine, "SELECT count(*) FROM audit_log WHERE action = 'demo.seed'") == 2
    finally:
        engine.dispose()


def _schema_objects(engine: Engine) -> set[tuple[str, str]]:
    found = rows(
        engine,
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE connamespace = 'public'::regnamespace "
        "UNION SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    )
    return {(a, b) for a, b in found}


def test_scaled_load_through_copy(fresh_database: Callable[[str], str], db: Engine) -> None:
    engine = create_engine(fresh_database("seed_scale"))
    try:
        report = seed_demo(engine, patients=20_000, seed=11, reference_date=REFERENCE)
        assert scalar(engine, "SELECT count(*) FROM patients") == 20_000
        assert report.rows["encounters"] > 3 * 20_000
        assert report.rows["observations"] > 10 * 20_000
        assert report.seconds < 90, report.phases
        # Indexes and foreign keys dropped for the bulk load are back, exactly as defined.
        assert _schema_objects(engine) == _schema_objects(db)
        assert scalar(engine, "SELECT count(*) FROM pg_constraint WHERE NOT convalidated") == 0
        next_id = scalar(engine, "SELECT nextval(pg_get_serial_sequence('observations', 'id'))")
        assert next_id == report.rows["observations"] + 1
    finally:
        engine.dispose()
