"""FHIR R4 export: a patient's record as a transaction Bundle (valid against fhir.resources.R4B).

Resource ids are UUID-5 of ``<table>/<row id>``, so the same row always exports under the
same id and a re-import of an export is recognised. Procedures coded in CVX are exported
as Immunization resources (the Synthea import stores immunizations that way).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from cims.patients.models import Patient
from cims.records.models import (
    Allergy,
    Diagnosis,
    Encounter,
    Observation,
    Prescription,
    Problem,
    Procedure,
)
from cims.security import audit
from cims.security.crypto import FieldCipher, load_cipher
from cims.security.incidents import require_no_lockdown
from cims.security.rbac import Actor, Privilege, requires

_NAMESPACE: Final = uuid.UUID("6f1d0c3e-1b7a-4f3e-9a51-c1a5c1d5e001")
MRN_SYSTEM: Final = "urn:cims:mrn"
CODE_SYSTEMS: Final = {
    "SNOMED-CT": "http://snomed.info/sct",
    "ICD-10": "http://hl7.org/fhir/sid/icd-10",
    "LOINC": "http://loinc.org",
    "RxNorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "CVX": "http://hl7.org/fhir/sid/cvx",
}
ENCOUNTER_CLASS: Final = {"outpatient": "AMB", "inpatient": "IMP", "emergency": "EMER"}
OBSERVATION_CATEGORY: Final = {
    "vital": "vital-signs",
    "lab": "laboratory",
    "survey": "survey",
    "other": "exam",
}
_CLASS_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


class PatientNotFound(LookupError):
    """No live patient with that id or MRN."""


def resource_id(table: str, row_id: int) -> str:
    """The stable FHIR id of a CIMS row."""
    return str(uuid.uuid5(_NAMESPACE, f"{table}/{row_id}"))


def _ref(table: str, row_id: int | None) -> dict[str, str] | None:
    return {"reference": f"urn:uuid:{resource_id(table, row_id)}"} if row_id else None


def _when(value: dt.datetime | dt.date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _concept(system: str, code: str, text: str) -> dict[str, Any]:
    coding = {"system": CODE_SYSTEMS.get(system, f"urn:cims:code-system:{system}"), "code": code}
    return {"coding": [{**coding, "display": text}], "text": text}


def _status(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": f"http://terminology.hl7.org/CodeSystem/{system}", "code": code}]}


def _clean(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if v is not None and v != [] and v != {}}


def _number(value: Decimal) -> float | int:
    return int(value) if value == value.to_integral_value() else float(value)


def _patient(cipher: FieldCipher, patient: Patient) -> dict[str, Any]:
    address = cipher.decrypt_text(
        patient.address_enc, table="patients", column="address", row_id=patient.id
    )
    return _clean(
        {
            "resourceType": "Patient",
            "identifier": [{"system": MRN_SYSTEM, "value": patient.mrn}],
            "name": [
                _clean(
                    {
                        "text": patient.full_name,
                        "family": patient.family_name or None,
                        "given": [patient.given_name] if patient.given_name else None,
                    }
                )
            ],
            "gender": {"M": "male", "F": "female"}.get(patient.sex, "unknown"),
            "birthDate": _when(patient.birth_date),
            "deceasedDateTime": _when(patient.death_date),
            "address": [{"text": address}] if address else None,
        }
    )


def _rows(session: Session, model: Any, patient_id: int, order: Any) -> list[Any]:
    query = select(model).where(model.patient_id == patient_id, model.voided.is_(False))
    return list(session.scalars(query.order_by(order, model.id)))


def build_bundle(session: Session, cipher: FieldCipher, patient: Patient) -> dict[str, Any]:
    """One patient's record as a FHIR R4 transaction Bundle (a plain JSON dict)."""
    pid = patient.id
    subject = _ref("patients", pid)
    entries: list[tuple[str, int, dict[str, Any]]] = [("patients", pid, _patient(cipher, patient))]
    for e in _rows(session, Encounter, pid, Encounter.started_at):
        entries.append(
            (
                "encounters",
                e.id,
                _clean(
                    {
                        "resourceType": "Encounter",
                        "status": "finished" if e.status == "closed" else "in-progress",
                        "class": {
                            "system": _CLASS_SYSTEM,
                            "code": ENCOUNTER_CLASS[e.encounter_type],
                        },
                        "subject": subject,
                        "period": _clean({"start": _when(e.started_at), "end": _when(e.ended_at)}),
                        "reasonCode": [{"text": e.chief_complaint}] if e.chief_complaint else None,
                    }
                ),
            )
        )
    for d in _rows(session, Diagnosis, pid, Diagnosis.diagnosed_at):
        entries.append(
            (
                "diagnoses",
                d.id,
                _clean(
                    {
                        "resourceType": "Condition",
                        "verificationStatus": _status("condition-ver-status", "confirmed"),
                        "category": [_status("condition-category", "encounter-diagnosis")],
                        "code": _concept(d.code_system, d.code, d.description),
                        "subject": subject,
                        "encounter": _ref("encounters", d.encounter_id),
                        "onsetDateTime": _when(d.diagnosed_at),
                        "recordedDate": _when(d.diagnosed_at),
                    }
                ),
            )
        )
    for p in _rows(session, Problem, pid, Problem.onset_date):
        clinical = {"active": "active", "resolved": "resolved"}.get(p.status, "inactive")
        entries.append(
            (
                "problems",
                p.id,
                _clean(
                    {
                        "resourceType": "Condition",
                        "clinicalStatus": _status("condition-clinical", clinical),
                        "category": [_status("condition-category", "problem-list-item")],
                        "code": _concept(p.code_system, p.code, p.description),
                        "subject": subject,
                        "onsetDateTime": _when(p.onset_date),
                        "abatementDateTime": _when(p.resolved_date),
                    }
                ),
            )
        )
    for o in _rows(session, Observation, pid, Observation.observed_at):
        value: dict[str, Any] = {}
        if o.value_num is not None:
            quantity = {"value": _number(o.value_num), "unit": o.unit}
            value["valueQuantity"] = _clean(quantity)
        elif o.value_text is not None:
            value["valueString"] = o.value_text
        entries.append(
            (
                "observations",
                o.id,
                _clean(
                    {
                        "resourceType": "Observation",
                        "status": "final",
                        "category": [
                            _status("observation-category", OBSERVATION_CATEGORY[o.category])
                        ],
                        "code": _concept(o.code_system, o.code, o.name),
                        "subject": subject,
                        "encounter": _ref("encounters", o.encounter_id),
                        "effectiveDateTime": _when(o.observed_at),
                        **value,
                    }
                ),
            )
        )
    for m in _rows(session, Prescription, pid, Prescription.prescribed_at):
        entries.append(
            (
                "prescriptions",
                m.id,
                _clean(
                    {
                        "resourceType": "MedicationRequest",
                        "status": m.status,
                        "intent": "order",
                        "medicationCodeableConcept": _concept("RxNorm", m.drug_code, m.drug_name),
                        "subject": subject,
                        "encounter": _ref("encounters", m.encounter_id),
                        "authoredOn": _when(m.prescribed_at),
                        "dosageInstruction": [
                            {"text": f"{m.dose} {m.dose_unit} {m.route} {m.frequency}"}
                        ],
                    }
                ),
            )
        )
    for a in _rows(session, Allergy, pid, Allergy.noted_at):
        clinical = "active" if a.status == "active" else "inactive"
        entries.append(
            (
                "allergies",
                a.id,
                _clean(
                    {
                        "resourceType": "AllergyIntolerance",
                        "clinicalStatus": _status("allergyintolerance-clinical", clinical),
                        "code": _concept("SNOMED-CT", a.substance_code, a.substance)
                        if a.substance_code
                        else {"text": a.substance},
                        "patient": subject,
                        "recordedDate": _when(a.noted_at),
                        "note": [{"text": a.reaction}] if a.reaction else None,
                    }
                ),
            )
        )
    for r in _rows(session, Procedure, pid, Procedure.performed_at):
        if r.code_system == "CVX":
            resource = {
                "resourceType": "Immunization",
                "status": "completed",
                "vaccineCode": _concept("CVX", r.code, r.description),
                "patient": subject,
                "encounter": _ref("encounters", r.encounter_id),
                "occurrenceDateTime": _when(r.performed_at),
            }
        else:
            resource = {
                "resourceType": "Procedure",
                "status": "completed",
                "code": _concept(r.code_system, r.code, r.description),
                "subject": subject,
                "encounter": _ref("encounters", r.encounter_id),
                "performedDateTime": _when(r.performed_at),
            }
        entries.append(("procedures", r.id, _clean(resource)))
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{resource_id(table, row_id)}",
                "resource": {**resource, "id": resource_id(table, row_id)},
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
            for table, row_id, resource in entries
        ],
    }


def _live_patient(session: Session, *, patient_id: int | None, mrn: str | None) -> Patient:
    query = select(Patient).where(Patient.voided.is_(False))
    query = query.where(Patient.id == patient_id) if patient_id else query.where(Patient.mrn == mrn)
    patient = session.scalar(query)
    if patient is None:
        raise PatientNotFound(mrn or str(patient_id))
    return patient


@requires(Privilege.EXPORT_DATA)
def export_patient_fhir(
    *, session: Session, actor: Actor, patient_id: int | None = None, mrn: str | None = None
) -> dict[str, Any]:
    """One patient as a FHIR R4 Bundle (audited; blocked during a lockdown)."""
    require_no_lockdown(session)
    patient = _live_patient(session, patient_id=patient_id, mrn=mrn)
    bundle = build_bundle(session, load_cipher(session), patient)
    audit.record(
        session,
        actor,
        "interop.export_fhir",
        patient_id=patient.id,
        object_type="patient",
        object_id=patient.id,
        detail={"resources": len(bundle["entry"])},
    )
    return bundle


@requires(Privilege.EXPORT_DATA)
def export_all_fhir(*, session: Session, actor: Actor) -> Iterator[str]:
    """Every live patient as NDJSON, one Bundle per line, streamed (audited once, up front)."""
    require_no_lockdown(session)
    ids = list(
        session.scalars(select(Patient.id).where(Patient.voided.is_(False)).order_by(Patient.id))
    )
    audit.record(
        session,
        actor,
        "interop.export_fhir_all",
        object_type="patient",
        detail={"patients": len(ids)},
    )
    cipher = load_cipher(session)

    def lines() -> Iterator[str]:
        for patient_id in ids:
            patient = session.get(Patient, patient_id)
            if patient is not None:
                yield json.dumps(build_bundle(session, cipher, patient), ensure_ascii=False)

    return lines()
