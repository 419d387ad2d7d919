"""Synthea organizations, providers, payers and patients: the rows other files refer to.

Organizations become departments; providers become clinician accounts that can never sign
in (disabled, with an unusable password hash) so encounters keep their attending doctor.
Patients' address and identifiers (SSN, driver's licence, passport) are encrypted in Python
in batches and COPYed in; identifiers go to ``patient_identifiers`` with blind indexes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from cims.interop.synthea_steps import (
    DATE_RE,
    SYSTEM,
    Context,
    apply_checks,
    assign_ids,
    insert,
    link,
    reject,
    reject_duplicate_keys,
    require,
    resolve,
)
from cims.patients.mrn import make_mrn
from cims.security.crypto import FieldCipher

# Never a bcrypt hash: verify_password() is always False for it.
NO_SIGN_IN_HASH: Final = "!imported-clinician-no-sign-in"
IDENTIFIER_SYSTEMS: Final = (
    ("ssn", "us-ssn"),
    ("drivers", "us-drivers-license"),
    ("passport", "passport"),
)
_BATCH: Final = 5000


def load_organizations(ctx: Context) -> Iterator[None]:
    """organizations.csv -> departments (code ``SY-<id>``)."""
    table = "stg_organizations"
    require(ctx, table, "id")
    require(ctx, table, "name")
    reject_duplicate_keys(ctx, table)
    assign_ids(ctx, table, "organizations", "departments", "new_id")
    yield
    insert(
        ctx,
        "departments",
        "id, code, name_zh, name_en, kind, created_by_id",
        f"SELECT new_id, 'SY-' || src, name, name, 'clinical', %(actor)s FROM {table}"
        " WHERE new_id IS NOT NULL",
        {"actor": ctx.actor_id},
    )
    link(ctx, table, "organizations", "departments", "new_id")


def load_providers(ctx: Context) -> Iterator[None]:
    """providers.csv -> disabled staff accounts with the doctor role in their department."""
    table = "stg_providers"
    require(ctx, table, "id")
    require(ctx, table, "name")
    resolve(ctx, table, "organization", "organizations", "department_id")
    reject(ctx, table, "department_id IS NULL", "ORGANIZATION not found")
    reject_duplicate_keys(ctx, table)
    assign_ids(ctx, table, "providers", "users", "new_id")
    yield
    insert(
        ctx,
        "users",
        "id, username, display_name, kind, password_hash, is_active, disabled_at,"
        " disabled_reason, title, created_by_id",
        "SELECT new_id, 'synthea_' || replace(lower(src), '-', ''), name, 'staff', %(hash)s,"
        " false, now(), 'imported clinician record: no sign-in', speciality, %(actor)s"
        f" FROM {table} WHERE new_id IS NOT NULL",
        {"hash": NO_SIGN_IN_HASH, "actor": ctx.actor_id},
    )
    insert(
        ctx,
        "user_roles",
        "user_id, role_id",
        f"SELECT s.new_id, r.id FROM {table} s JOIN roles r ON r.code = 'doctor'"
        " WHERE s.new_id IS NOT NULL",
        {},
    )
    insert(
        ctx,
        "user_departments",
        "user_id, department_id, is_primary",
        f"SELECT new_id, department_id, true FROM {table} WHERE new_id IS NOT NULL",
        {},
    )
    link(ctx, table, "providers", "users", "new_id")


def load_payers(ctx: Context) -> Iterator[None]:
    """payers.csv: checked and kept for the insurance-type mapping of payer transitions."""
    table = "stg_payers"
    require(ctx, table, "id")
    reject_duplicate_keys(ctx, table)
    apply_checks(ctx, table)
    yield
    ctx.added("insurance_payers", ctx.execute(f"SELECT 1 FROM {table} WHERE reject IS NULL"))


_INSURANCE_TYPE: Final = (
    "CASE WHEN p.name IS NULL OR upper(p.name) = 'NO_INSURANCE' THEN 'self_pay'"
    " WHEN p.name ILIKE ANY (ARRAY['%%medicare%%', '%%medicaid%%', '%%dual eligible%%'])"
    " THEN 'public' ELSE 'commercial' END"
)


def load_payer_transitions(ctx: Context) -> Iterator[None]:
    """payer_transitions.csv: each new patient's latest payer sets their insurance type."""
    table = "stg_payer_transitions"
    require(ctx, table, "patient")
    resolve(ctx, table, "patient", "patients", "patient_id")
    reject(ctx, table, "patient_id IS NULL", "PATIENT not found")
    apply_checks(ctx, table)
    if "patients" in ctx.maps:  # else no row found its patient
        new_patients = ctx.maps["patients"][0]
        ctx.execute(
            f"UPDATE {table} SET skip = true WHERE reject IS NULL"
            f" AND patient_id NOT IN (SELECT new_id FROM {new_patients} WHERE new_id IS NOT NULL)"
        )
    yield
    rows = ctx.execute(
        "UPDATE patients t SET insurance_type = x.kind FROM ("
        f" SELECT DISTINCT ON (s.patient_id) s.patient_id, {_INSURANCE_TYPE} AS kind"
        f" FROM {table} s LEFT JOIN stg_payers p ON p.id = s.payer"
        " WHERE s.reject IS NULL AND NOT s.skip"
        " ORDER BY s.patient_id, coalesce(s.start_date, s.start_year) DESC"
        ") x WHERE t.id = x.patient_id"
    )
    ctx.added("patients.insurance_type", rows)


def load_patients(ctx: Context, cipher: FieldCipher) -> Iterator[None]:
    """patients.csv -> patients (+ encrypted identifiers), MRNs from the new ids."""
    table = "stg_patients"
    require(ctx, table, "id")
    require(ctx, table, "first")
    require(ctx, table, "birthdate")
    reject(ctx, table, f"birthdate !~ '{DATE_RE}'", "bad BIRTHDATE")
    reject(ctx, table, f"deathdate IS NOT NULL AND deathdate !~ '{DATE_RE}'", "bad DEATHDATE")
    reject_duplicate_keys(ctx, table)
    assign_ids(ctx, table, "patients", "patients", "new_id")
    yield
    ctx.cursor.execute(
        "SELECT new_id, first, middle, last, gender, birthdate, deathdate, address, city, state,"
        f" zip, ssn, drivers, passport FROM {table} WHERE new_id IS NOT NULL ORDER BY new_id"
    )
    people = ctx.cursor.fetchall()
    patient_rows: list[list[Any]] = []
    identifier_rows: list[tuple[int, str, str]] = []
    for row in people:
        new_id, first, middle, last, gender, birth, death, street, city, state, zip_code = row[:11]
        given = " ".join(part for part in (first, middle) if part)
        full = " ".join(part for part in (given, last) if part)
        address = ", ".join(part for part in (street, city, state, zip_code) if part)
        patient_rows.append(
            [
                new_id,
                make_mrn(new_id),
                last or "",
                given,
                full,
                "".join(word[0] for word in full.lower().split()),
                gender if gender in ("M", "F") else "U",
                birth,
                death,
                cipher.encrypt(address, table="patients", column="address", row_id=new_id)
                if address
                else None,
                ctx.actor_id,
            ]
        )
        for offset, (_column, system) in enumerate(IDENTIFIER_SYSTEMS):
            value = row[11 + offset]
            if value:
                identifier_rows.append((new_id, system, value))
    columns = (
        "id, mrn, family_name, given_name, full_name, name_initials, sex, birth_date,"
        " death_date, address_enc, created_by_id, id_type, nationality, insurance_type"
    )
    with ctx.cursor.copy(f"COPY patients ({columns}) FROM STDIN") as copy:
        for values in patient_rows:
            copy.write_row([*values, "none", "US", "self_pay"])
    ctx.added("patients", len(patient_rows))
    link(ctx, table, "patients", "patients", "new_id")
    _load_identifiers(ctx, cipher, identifier_rows)


def _load_identifiers(ctx: Context, cipher: FieldCipher, rows: list[tuple[int, str, str]]) -> None:
    if not rows:
        return
    ctx.cursor.execute(
        "SELECT nextval(pg_get_serial_sequence('patient_identifiers', 'id'))"
        " FROM generate_series(1, %s)",
        (len(rows),),
    )
    ids = [int(r[0]) for r in ctx.cursor.fetchall()]
    with ctx.cursor.copy(
        "COPY patient_identifiers (id, patient_id, system, value_enc, value_bidx) FROM STDIN"
    ) as copy:
        for start in range(0, len(rows), _BATCH):
            for new_id, (patient_id, system, value) in zip(
                ids[start : start + _BATCH], rows[start : start + _BATCH], strict=True
            ):
                copy.write_row(
                    [
                        new_id,
                        patient_id,
                        system,
                        cipher.encrypt(
                            value, table="patient_identifiers", column="value", row_id=new_id
                        ),
                        cipher.blind_index(value, purpose=system),
                    ]
                )
    ctx.added("patient_identifiers", len(rows))


__all__ = [
    "NO_SIGN_IN_HASH",
    "SYSTEM",
    "load_organizations",
    "load_patients",
    "load_payer_transitions",
    "load_payers",
    "load_providers",
]
