"""FHIR R4 import: a transaction Bundle of one patient into CIMS (validated with R4B first).

Bundles are small (hundreds of resources), so rows are added one by one through the ORM;
``import_links`` (source system ``fhir``, table = resource type, id = resource id) makes a
re-import add nothing. Encounter-diagnosis Conditions become diagnoses; problem-list
Conditions become problems; a bundle with no problem-list entries (Synthea's) also gets a
problem per diagnosis, exactly as the Synthea CSV import does. Encounters whose service
provider CIMS does not know are filed under one ``FHIR`` department.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.governance.models import ImportLink, ImportRun
from cims.interop.fhir_mapping import SYSTEM, clinical_rows, codes
from cims.interop.synthea import ImportReport, InvalidImport
from cims.org.models import Department
from cims.patients.models import Patient, PatientIdentifier
from cims.patients.mrn import make_mrn
from cims.security import audit
from cims.security.crypto import FieldCipher, load_cipher
from cims.security.rbac import Actor, Privilege, requires

_IDENTIFIERS: Final = {
    "http://hl7.org/fhir/sid/us-ssn": "us-ssn",
    "urn:oid:2.16.840.1.113883.4.3.25": "us-drivers-license",
    "http://standardhealthrecord.org/fhir/StructureDefinition/passportNumber": "passport",
}
KNOWN_TYPES: Final = (
    "Patient",
    "Encounter",
    "Condition",
    "Observation",
    "MedicationRequest",
    "AllergyIntolerance",
    "Procedure",
    "Immunization",
    "CarePlan",
)


class _Importer:
    """The state of one bundle's import: reference map, links, report."""

    def __init__(self, session: Session, actor: Actor, cipher: FieldCipher, run: ImportRun):
        self.session, self.actor, self.cipher, self.run = session, actor, cipher, run
        self.refs: dict[str, int] = {}
        self.known: dict[tuple[str, str], int] = {}
        self.added: dict[str, int] = {}
        self.skipped = 0
        self.rejected: list[dict[str, Any]] = []
        self._department: int | None = None

    def load_links(self, source_ids: list[str]) -> None:
        """Every earlier import of this bundle's resources, in one query."""
        rows = self.session.execute(
            select(ImportLink.source_table, ImportLink.source_id, ImportLink.target_id).where(
                ImportLink.source_system == SYSTEM, ImportLink.source_id.in_(source_ids)
            )
        )
        self.known = {(table, source): int(target) for table, source, target in rows}

    def linked(self, source_table: str, source_id: str) -> int | None:
        return self.known.get((source_table, source_id))

    def add_linked(self, rows: list[tuple[str, str, Any]]) -> None:
        """Insert rows (batched by the ORM) and the links that make a re-import a no-op."""
        self.session.add_all(row for _table, _source, row in rows)
        self.session.flush()
        self.session.add_all(
            ImportLink(
                source_system=SYSTEM,
                source_table=table,
                source_id=source,
                target_table=row.__tablename__,
                target_id=row.id,
                run_id=self.run.id,
            )
            for table, source, row in rows
        )
        for _table, _source, row in rows:
            self.added[row.__tablename__] = self.added.get(row.__tablename__, 0) + 1
        self.session.flush()

    def department(self) -> int:
        if self._department is None:
            found = self.session.scalar(select(Department.id).where(Department.code == "FHIR"))
            if found is None:
                dept = Department(
                    code="FHIR",
                    name_zh="外部导入",
                    name_en="Imported (FHIR)",
                    created_by_id=self.actor.user_id,
                )
                self.session.add(dept)
                self.session.flush()
                found = dept.id
            self._department = found
        return self._department

    def patient(self, resource: dict[str, Any]) -> Patient:
        new_id = int(
            self.session.scalar(text("SELECT nextval(pg_get_serial_sequence('patients', 'id'))"))
        )
        name = (resource.get("name") or [{}])[0]
        given = " ".join(name.get("given") or [])
        family = name.get("family") or ""
        full = name.get("text") or " ".join(p for p in (given, family) if p) or "?"
        address = (resource.get("address") or [{}])[0]
        address_text = address.get("text") or ", ".join(
            p
            for p in (
                *address.get("line", []),
                address.get("city"),
                address.get("state"),
                address.get("postalCode"),
            )
            if p
        )
        deceased = resource.get("deceasedDateTime")
        return Patient(
            id=new_id,
            mrn=make_mrn(new_id),
            family_name=family,
            given_name=given,
            full_name=full,
            name_initials="".join(w[0] for w in full.lower().split()),
            sex={"male": "M", "female": "F"}.get(resource.get("gender", ""), "U"),
            birth_date=dt.date.fromisoformat(resource["birthDate"])
            if resource.get("birthDate")
            else None,
            death_date=dt.date.fromisoformat(deceased[:10]) if deceased else None,
            id_type="none",
            nationality="US" if address.get("country") == "US" else "CN",
            insurance_type="self_pay",
            address_enc=self.cipher.encrypt(
                address_text, table="patients", column="address", row_id=new_id
            )
            if address_text
            else None,
            created_by_id=self.actor.user_id,
        )

    def identifiers(self, patient_id: int, resource: dict[str, Any]) -> None:
        for identifier in resource.get("identifier") or []:
            system = _IDENTIFIERS.get(identifier.get("system", ""))
            if (
                system is None
                and (identifier.get("type") or {}).get("coding", [{}])[0].get("code") == "PPN"
            ):
                system = "passport"
            value = identifier.get("value")
            if system is None or not value:
                continue
            row = PatientIdentifier(
                patient_id=patient_id, system=system, value_enc=b"", value_bidx=b""
            )
            self.session.add(row)
            self.session.flush()
            row.value_enc = self.cipher.encrypt(
                value, table="patient_identifiers", column="value", row_id=row.id
            )
            row.value_bidx = self.cipher.blind_index(value, purpose=system)
            self.added["patient_identifiers"] = self.added.get("patient_identifiers", 0) + 1


def _reference(imp: _Importer, value: dict[str, Any] | None) -> int | None:
    return imp.refs.get((value or {}).get("reference", ""))


@requires(Privilege.IMPORT_DATA)
def import_fhir_bundle(
    *, session: Session, actor: Actor, bundle: dict[str, Any] | str, label: str = "bundle"
) -> ImportReport:
    """Import one FHIR R4 Bundle (validated against R4B) in the caller's transaction."""
    from fhir.resources.R4B.bundle import Bundle

    try:
        data = json.loads(bundle) if isinstance(bundle, str) else bundle
        if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
            raise ValueError("not a Bundle")
        Bundle.model_validate(data)
    except (ValidationError, ValueError, RecursionError):  # RecursionError: nested too deep
        raise InvalidImport(["import.invalid_fhir"]) from None
    run = ImportRun(
        source_system=SYSTEM, source_label=label, layout="fhir-r4", started_by_id=actor.user_id
    )
    session.add(run)
    session.flush()
    imp = _Importer(session, actor, load_cipher(session), run)
    entries = data.get("entry") or []
    unknown: dict[str, int] = {}
    kinds = [((e.get("resource") or {}).get("resourceType", "?")) for e in entries]
    has_problem_list = any(
        "problem-list-item" in codes((e.get("resource") or {}).get("category"))
        for e, kind in zip(entries, kinds, strict=True)
        if kind == "Condition"
    )
    read: dict[str, int] = {}
    imp.load_links([(e.get("resource") or {}).get("id") or e.get("fullUrl") or "" for e in entries])
    # Patients first, then encounters, then everything that refers to them: one flush each.
    for stage in (("Patient",), ("Encounter",), KNOWN_TYPES[2:]):
        pending: list[tuple[str, str, Any]] = []
        encounter_keys: list[list[str]] = []
        for index, (entry, kind) in enumerate(zip(entries, kinds, strict=True)):
            if kind not in stage:
                continue
            resource = entry.get("resource") or {}
            read[kind] = read.get(kind, 0) + 1
            source_id = resource.get("id") or entry.get("fullUrl") or f"entry-{index}"
            keys = [k for k in (entry.get("fullUrl"), f"{kind}/{resource.get('id')}") if k]
            existing = imp.linked(kind, source_id)
            if existing is not None:
                imp.skipped += 1
                imp.refs.update(dict.fromkeys(keys, existing))
                continue
            if kind == "Patient":
                patient = imp.patient(resource)
                imp.add_linked([(kind, source_id, patient)])
                imp.identifiers(patient.id, resource)
                imp.refs.update(dict.fromkeys(keys, patient.id))
                continue
            patient_id = _reference(imp, resource.get("subject") or resource.get("patient"))
            if patient_id is None:
                imp.rejected.append({"line": index + 1, "reason": f"{kind}: patient not found"})
                continue
            encounter_ref = resource.get("encounter") or resource.get("context")
            encounter_id = _reference(imp, encounter_ref)
            if encounter_ref and encounter_id is None:
                imp.rejected.append({"line": index + 1, "reason": f"{kind}: encounter not found"})
                continue
            rows = clinical_rows(
                imp.department,
                imp.actor.user_id,
                kind,
                resource,
                patient_id,
                encounter_id,
                not has_problem_list,
            )
            pending += [(table, source_id, row) for table, row in rows]
            if kind == "Encounter":
                encounter_keys.append(keys)
        if pending:
            imp.add_linked(pending)
        for keys, (_table, _source, row) in zip(encounter_keys, pending, strict=False):
            imp.refs.update(dict.fromkeys(keys, row.id))
    unknown.update({k: kinds.count(k) for k in set(kinds) if k not in KNOWN_TYPES})
    run.status = "succeeded"
    run.finished_at = utcnow()
    run.counts = {"read": read, "added": imp.added, "skipped": {"bundle": imp.skipped}}
    run.rejected = {"counts": {"bundle": len(imp.rejected)}, "rows": {"bundle": imp.rejected[:200]}}
    run.unknown = {"resource_types": unknown}
    session.flush()
    audit.record(
        session,
        actor,
        "interop.import_fhir",
        object_type="import_run",
        object_id=run.id,
        detail={"rows_added": sum(imp.added.values()), "rejected": len(imp.rejected)},
    )
    return ImportReport(
        run_id=run.id,
        layout="fhir-r4",
        read=read,
        added=imp.added,
        skipped={"bundle": imp.skipped},
        rejected_counts={"bundle": len(imp.rejected)} if imp.rejected else {},
        rejected={"bundle": imp.rejected[:200]} if imp.rejected else {},
        unknown={"resource_types": unknown},
    )
