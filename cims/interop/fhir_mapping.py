"""FHIR R4 resources -> CIMS rows: the per-resource mapping used by the bundle import."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from cims.base import utcnow
from cims.interop.fhir_export import CODE_SYSTEMS
from cims.interop.synthea_clinical import SENSITIVE_LOINC
from cims.records.models import (
    Allergy,
    Diagnosis,
    Encounter,
    Observation,
    Prescription,
    Problem,
    Procedure,
    TreatmentPlan,
)

SYSTEM: Final = "fhir"
_SHORT_SYSTEM: Final = {url: short for short, url in CODE_SYSTEMS.items()}
_CLASS: Final = {
    "IMP": "inpatient",
    "ACUTE": "inpatient",
    "NONAC": "inpatient",
    "EMER": "emergency",
}
_OBS_CATEGORY: Final = {"vital-signs": "vital", "laboratory": "lab", "survey": "survey"}


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def concept_parts(concept: dict[str, Any] | None) -> tuple[str, str, str]:
    """(code system short name, code, text) of a CodeableConcept's first coding."""
    concept = concept or {}
    coding = (concept.get("coding") or [{}])[0]
    system = coding.get("system", "")
    code = coding.get("code") or concept.get("text") or "unknown"
    label = concept.get("text") or coding.get("display") or code
    return _SHORT_SYSTEM.get(system, system or "unknown"), code, label


def codes(concepts: list[dict[str, Any]] | None) -> set[str]:
    return {c.get("code", "") for concept in concepts or [] for c in concept.get("coding", [])}


def _decimal(value: Any) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if abs(number) < Decimal("1e10") else None


def clinical_rows(
    department: Callable[[], int],
    actor: int | None,
    kind: str,
    r: dict[str, Any],
    patient_id: int,
    encounter_id: int | None,
    problems_from_diagnoses: bool,
) -> list[tuple[str, Any]]:
    """The CIMS row(s) one clinical resource becomes, with their link source tables."""
    if kind == "Encounter":
        period = r.get("period") or {}
        code = (r.get("class") or {}).get("code", "AMB")
        reason = (r.get("reasonCode") or [{}])[0]
        return [
            (
                "Encounter",
                Encounter(
                    patient_id=patient_id,
                    encounter_type=_CLASS.get(code, "outpatient"),
                    department_id=department(),
                    started_at=parse_time(period.get("start")) or utcnow(),
                    ended_at=parse_time(period.get("end")),
                    chief_complaint=reason.get("text") or concept_parts(reason)[2]
                    if reason
                    else None,
                    status="closed" if r.get("status") == "finished" else "open",
                    source_system=SYSTEM,
                    source_id=r.get("id"),
                    created_by_id=actor,
                ),
            )
        ]
    if kind == "Condition":
        system, code, label = concept_parts(r.get("code"))
        onset = parse_time(r.get("onsetDateTime") or r.get("recordedDate")) or utcnow()
        abated = parse_time(r.get("abatementDateTime"))
        clinical = codes([r.get("clinicalStatus") or {}])
        problem = Problem(
            patient_id=patient_id,
            code_system=system,
            code=code,
            description=label,
            onset_date=onset.date(),
            resolved_date=abated.date() if abated else None,
            status="resolved" if abated or "resolved" in clinical else "active",
            created_by_id=actor,
        )
        if "problem-list-item" in codes(r.get("category")):
            return [("Condition", problem)]
        rows: list[tuple[str, Any]] = [
            (
                "Condition",
                Diagnosis(
                    patient_id=patient_id,
                    encounter_id=encounter_id,
                    code_system=system,
                    code=code,
                    description=label,
                    rank="secondary",
                    diagnosed_at=onset,
                    created_by_id=actor,
                ),
            )
        ]
        if problems_from_diagnoses:
            rows.append(("Condition#problem", problem))
        return rows
    if kind == "Observation":
        system, code, label = concept_parts(r.get("code"))
        quantity = r.get("valueQuantity") or {}
        number = _decimal(quantity.get("value")) if quantity else None
        text_value = r.get("valueString") or (
            concept_parts(r.get("valueCodeableConcept"))[2]
            if r.get("valueCodeableConcept")
            else None
        )
        category = next(iter(codes(r.get("category"))), "")
        return [
            (
                "Observation",
                Observation(
                    patient_id=patient_id,
                    encounter_id=encounter_id,
                    category=_OBS_CATEGORY.get(category, "other"),
                    code_system=system if system != "unknown" else "LOINC",
                    code=code,
                    name=label,
                    value_num=number,
                    value_text=None
                    if number is not None or code in SENSITIVE_LOINC
                    else text_value,
                    unit=quantity.get("unit") or quantity.get("code"),
                    observed_at=parse_time(r.get("effectiveDateTime") or r.get("issued"))
                    or utcnow(),
                    created_by_id=actor,
                ),
            )
        ]
    if kind == "MedicationRequest":
        _system, code, label = concept_parts(r.get("medicationCodeableConcept"))
        status = r.get("status", "active")
        return [
            (
                "MedicationRequest",
                Prescription(
                    patient_id=patient_id,
                    encounter_id=encounter_id,
                    drug_code=code,
                    drug_name=label,
                    dose=Decimal("1"),
                    dose_unit="dose",
                    route="unspecified",
                    frequency="unspecified",
                    duration_days=0,
                    quantity=Decimal("1"),
                    prescribed_at=parse_time(r.get("authoredOn")) or utcnow(),
                    status=status
                    if status in ("active", "completed", "stopped", "cancelled")
                    else "completed",
                    created_by_id=actor,
                ),
            )
        ]
    if kind == "AllergyIntolerance":
        _system, code, label = concept_parts(r.get("code"))
        note = (r.get("note") or [{}])[0].get("text")
        return [
            (
                "AllergyIntolerance",
                Allergy(
                    patient_id=patient_id,
                    substance=label,
                    substance_code=code if code != label else None,
                    reaction=note,
                    status="active"
                    if "active" in codes([r.get("clinicalStatus") or {}])
                    else "inactive",
                    noted_at=parse_time(r.get("recordedDate") or r.get("onsetDateTime"))
                    or utcnow(),
                    created_by_id=actor,
                ),
            )
        ]
    if kind in ("Procedure", "Immunization"):
        concept = r.get("code") if kind == "Procedure" else r.get("vaccineCode")
        system, code, label = concept_parts(concept)
        when = (
            r.get("performedDateTime")
            or (r.get("performedPeriod") or {}).get("start")
            or r.get("occurrenceDateTime")
        )
        return [
            (
                kind,
                Procedure(
                    patient_id=patient_id,
                    encounter_id=encounter_id,
                    code_system="CVX" if kind == "Immunization" else system,
                    code=code,
                    description=label,
                    performed_at=parse_time(when) or utcnow(),
                    created_by_id=actor,
                ),
            )
        ]
    # CarePlan
    period = r.get("period") or {}
    start = parse_time(period.get("start")) or utcnow()
    end = parse_time(period.get("end"))
    title = next((c.get("text") for c in r.get("category") or [] if c.get("text")), "Care plan")
    return [
        (
            "CarePlan",
            TreatmentPlan(
                patient_id=patient_id,
                encounter_id=encounter_id,
                title=title,
                start_date=start.date(),
                end_date=end.date() if end else None,
                status="completed" if r.get("status") == "completed" else "active",
                created_by_id=actor,
            ),
        )
    ]
