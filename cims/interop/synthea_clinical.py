"""Synthea encounters and clinical files -> CIMS records, one set-based INSERT per target.

Mapping choices: a condition becomes an encounter diagnosis *and* a problem-list entry;
immunizations are stored as procedures with code system CVX (a vaccination is something
performed, and the FHIR export turns CVX procedures back into Immunization resources);
medications become prescriptions (Synthea has no dose: 1 "dose", route/frequency
``unspecified``); careplans become treatment plans.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from cims.interop.synthea_steps import (
    KEY_COLUMNS,
    KEY_VALUES,
    NEW_ROWS,
    SYSTEM,
    Context,
    check_keyed,
    day,
    insert,
    keep_map,
    next_id,
    reject,
    reject_duplicate_keys,
    require,
    require_number,
    require_time,
    resolve,
    ts,
)

# Survey answers that repeat a demographic CIMS keeps only encrypted (PRAPARE "Address"):
# the observation is kept, its plaintext value is not.
SENSITIVE_LOINC: Final = ("56799-0",)
ENCOUNTER_TYPE: Final = (
    "CASE lower(encounterclass) WHEN 'inpatient' THEN 'inpatient'"
    " WHEN 'emergency' THEN 'emergency' ELSE 'outpatient' END"
)
# SNOMED's canonical URL as written by newer Synthea versions, kept as CIMS's short name.
CODE_SYSTEM: Final = (
    "CASE WHEN system IS NULL OR system IN ('http://snomed.info/sct', 'SNOMED-CT', 'SNOMED')"
    " THEN 'SNOMED-CT' WHEN system = 'http://www.nlm.nih.gov/research/umls/rxnorm' THEN 'RxNorm'"
    " ELSE system END"
)


def _patient_and_encounter(ctx: Context, table: str, *, encounter: bool = True) -> None:
    require(ctx, table, "patient")
    resolve(ctx, table, "patient", "patients", "patient_id")
    reject(ctx, table, "patient_id IS NULL", "PATIENT not found")
    if encounter:
        resolve(ctx, table, "encounter", "encounters", "encounter_id")
        reject(ctx, table, "encounter IS NOT NULL AND encounter_id IS NULL", "ENCOUNTER not found")


def load_encounters(ctx: Context) -> Iterator[None]:
    """encounters.csv -> encounters (class mapped to outpatient/inpatient/emergency)."""
    table = "stg_encounters"
    require(ctx, table, "id")
    require_time(ctx, table, "start")
    require_time(ctx, table, "stop", optional=True)
    require(ctx, table, "patient")
    resolve(ctx, table, "patient", "patients", "patient_id")
    reject(ctx, table, "patient_id IS NULL", "PATIENT not found")
    resolve(ctx, table, "organization", "organizations", "department_id")
    reject(ctx, table, "department_id IS NULL", "ORGANIZATION not found")
    resolve(ctx, table, "provider", "providers", "attending_id")
    reject_duplicate_keys(ctx, table)
    check_keyed(ctx, table, "encounters", ids={"new_id": next_id(ctx, "encounters")})
    keep_map(ctx, "encounters", table, "new_id")
    yield
    insert(
        ctx,
        "encounters",
        "id, patient_id, encounter_type, department_id, attending_id, started_at, ended_at,"
        " chief_complaint, status, source_system, source_id, created_by_id",
        f"SELECT new_id, patient_id, {ENCOUNTER_TYPE}, department_id, attending_id,"
        f" {ts('start')}, {ts('stop')}, coalesce(reasondescription, description),"
        f" CASE WHEN stop IS NULL THEN 'open' ELSE 'closed' END, {KEY_VALUES}, %(actor)s"
        f" FROM {table} WHERE new_id IS NOT NULL",
        {"actor": ctx.actor_id, "system": SYSTEM},
        staged=table,
    )


def load_conditions(ctx: Context) -> Iterator[None]:
    """conditions.csv -> diagnoses (of the encounter) and problems (the problem list)."""
    table = "stg_conditions"
    _patient_and_encounter(ctx, table)
    require(ctx, table, "code")
    require_time(ctx, table, "start")
    require_time(ctx, table, "stop", optional=True)
    check_keyed(ctx, table, "diagnoses")
    yield
    insert(
        ctx,
        "diagnoses",
        "patient_id, encounter_id, code_system, code, description, rank, diagnosed_at,"
        f" created_by_id, {KEY_COLUMNS}",
        f"SELECT patient_id, encounter_id, {CODE_SYSTEM}, code,"
        f" coalesce(description, code), 'secondary', {ts('start')}, %(actor)s, {KEY_VALUES}"
        f" FROM {table} WHERE {NEW_ROWS}",
        {"actor": ctx.actor_id, "system": SYSTEM},
        staged=table,
    )
    insert(
        ctx,
        "problems",
        "patient_id, code_system, code, description, onset_date, resolved_date, status,"
        f" created_by_id, {KEY_COLUMNS}",
        f"SELECT patient_id, {CODE_SYSTEM}, code, coalesce(description, code),"
        f" {day('start')}, {day('stop')},"
        f" CASE WHEN stop IS NULL THEN 'active' ELSE 'resolved' END, %(actor)s, {KEY_VALUES}"
        f" FROM {table} WHERE {NEW_ROWS}",
        {"actor": ctx.actor_id, "system": SYSTEM},
        staged=table,
    )


def load_medications(ctx: Context) -> Iterator[None]:
    """medications.csv -> prescriptions (completed when STOP is given)."""
    table = "stg_medications"
    _patient_and_encounter(ctx, table)
    require(ctx, table, "code")
    require_time(ctx, table, "start")
    require_time(ctx, table, "stop", optional=True)
    require_number(ctx, table, "dispenses")
    check_keyed(ctx, table, "prescriptions")
    yield
    insert(
        ctx,
        "prescriptions",
        "patient_id, encounter_id, drug_code, drug_name, dose, dose_unit, route, frequency,"
        " duration_days, quantity, prescribed_at, status, created_by_id,"
        f" {KEY_COLUMNS}",
        f"SELECT patient_id, encounter_id, code, coalesce(description, code), 1, 'dose',"
        " 'unspecified', 'unspecified',"
        f" greatest(coalesce({day('stop')} - {day('start')}, 0), 0),"
        " least(coalesce(dispenses::numeric, 1), 99999999), "
        f"{ts('start')}, CASE WHEN stop IS NULL THEN 'active' ELSE 'completed' END, %(actor)s,"
        f" {KEY_VALUES} FROM {table} WHERE {NEW_ROWS}",
        {"actor": ctx.actor_id, "system": SYSTEM},
        staged=table,
    )


def load_procedures(ctx: Context) -> Iterator[None]:
    """procedures.csv (DATE in 2.x, START/STOP in 3.x) -> procedures."""
    table = "stg_procedures"
    _patient_and_encounter(ctx, table)
    require(ctx, table, "code")
    require_time(ctx, table, "start")
    check_keyed(ctx, table, "procedures")
    yield
    insert(
        ctx,
        "procedures",
        "patient_id, encounter_id, code_system, code, description, performed_at, created_by_id,"
        f" {KEY_COLUMNS}",
        f"SELECT patient_id, encounter_id, {CODE_SYSTEM}, code,"
        f" coalesce(description, code), {ts('start')}, %(actor)s, {KEY_VALUES} FROM {table}"
        f" WHERE {NEW_ROWS}",
        {"actor": ctx.actor_id, "system": SYSTEM},
        staged=table,
    )


def load_immunizations(ctx: Context) -> Iterator[None]:
    """immunizations.csv -> procedures with code system CVX."""
    table = "stg_immunizations"
    _patient_and_encounter(ctx, table)
    require(ctx, table, "code")
    require_time(ctx, table, "date")
    check_keyed(ctx, table, "procedures")
    yield
    insert(
        ctx,
        "procedures",
        "patient_id, encounter_id, code_system, code, description, performed_at, created_by_id,"
        f" {KEY_COLUMNS}",
        "SELECT patient_id, encounter_id, 'CVX', code, coalesce(description, code),"
        f" {ts('date')}, %(actor)s, {KEY_VALUES} FROM {table} WHERE {NEW_ROWS}",
        {"actor": ctx.actor_id, "system": SYSTEM},
        staged=table,
    )


def load_allergies(ctx: Context) -> Iterator[None]:
    """allergies.csv -> allergies (severity of the first reaction, inactive when stopped)."""
    table = "stg_allergies"
    _patient_and_encounter(ctx, table)
    require(ctx, table, "code")
    require_time(ctx, table, "start")
    check_keyed(ctx, table, "allergies")
    yield
    insert(
        ctx,
        "allergies",
        "patient_id, substance, substance_code, reaction, severity, status, noted_at,"
        f" created_by_id, {KEY_COLUMNS}",
        "SELECT patient_id, coalesce(description, code), code, description1,"
        " CASE lower(severity1) WHEN 'mild' THEN 'mild' WHEN 'moderate' THEN 'moderate'"
        " WHEN 'severe' THEN 'severe' ELSE 'unknown' END,"
        f" CASE WHEN stop IS NULL THEN 'active' ELSE 'inactive' END, {ts('start')}, %(actor)s,"
        f" {KEY_VALUES} FROM {table} WHERE {NEW_ROWS}",
        {"actor": ctx.actor_id, "system": SYSTEM},
        staged=table,
    )


def load_careplans(ctx: Context) -> Iterator[None]:
    """careplans.csv -> treatment plans (completed when STOP is given)."""
    table = "stg_careplans"
    _patient_and_encounter(ctx, table)
    require_time(ctx, table, "start")
    require_time(ctx, table, "stop", optional=True)
    reject_duplicate_keys(ctx, table)
    check_keyed(ctx, table, "treatment_plans")
    yield
    insert(
        ctx,
        "treatment_plans",
        "patient_id, encounter_id, title, goals, start_date, end_date, status, created_by_id,"
        f" {KEY_COLUMNS}",
        "SELECT patient_id, encounter_id, coalesce(description, code, 'care plan'),"
        f" reasondescription, {day('start')}, {day('stop')},"
        f" CASE WHEN stop IS NULL THEN 'active' ELSE 'completed' END, %(actor)s, {KEY_VALUES}"
        f" FROM {table} WHERE {NEW_ROWS}",
        {"actor": ctx.actor_id, "system": SYSTEM},
        staged=table,
    )


def load_observations(ctx: Context) -> Iterator[None]:
    """observations.csv -> observations with units (numeric or text values)."""
    table = "stg_observations"
    _patient_and_encounter(ctx, table)
    require(ctx, table, "code")
    require_time(ctx, table, "date")
    reject(
        ctx,
        table,
        "lower(type) = 'numeric' AND value !~ '^-?\\d+(\\.\\d+)?$'",
        "bad VALUE for TYPE numeric",
    )
    check_keyed(ctx, table, "observations")
    yield
    numeric = "CASE WHEN lower(type) = 'numeric' THEN abs(value::numeric) < 1e10 ELSE false END"
    insert(
        ctx,
        "observations",
        "patient_id, encounter_id, category, code_system, code, name, value_num,"
        " value_text, unit, observed_at, created_by_id,"
        f" {KEY_COLUMNS}",
        "SELECT patient_id, encounter_id,"
        " CASE category WHEN 'vital-signs' THEN 'vital' WHEN 'laboratory' THEN 'lab'"
        " WHEN 'survey' THEN 'survey' ELSE 'other' END, 'LOINC', code,"
        f" coalesce(description, code), CASE WHEN {numeric} THEN value::numeric END,"
        f" CASE WHEN {numeric} OR code = ANY(%(sensitive)s) THEN NULL ELSE value END, units,"
        f" {ts('date')}, %(actor)s, {KEY_VALUES} FROM {table} WHERE {NEW_ROWS}",
        {"actor": ctx.actor_id, "system": SYSTEM, "sensitive": list(SENSITIVE_LOINC)},
        staged=table,
    )
