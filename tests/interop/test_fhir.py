"""FHIR R4: export validates against R4B, round-trips, and the shared Synthea bundles import."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

import factories
from cims.config import shared_data_dir
from cims.governance.models import ImportLink
from cims.interop.fhir_export import export_all_fhir, export_patient_fhir
from cims.interop.fhir_import import import_fhir_bundle
from cims.interop.synthea import InvalidImport, import_synthea
from cims.security.incidents import LockdownActive, start_lockdown
from cims.security.rbac import AccessDenied

DATA = shared_data_dir()
BUNDLES = sorted(p for p in (DATA / "fhir").glob("*.json") if "Information" not in p.name)
TABLES = (
    "encounters",
    "diagnoses",
    "problems",
    "observations",
    "prescriptions",
    "allergies",
    "procedures",
)


def _counts(session: Session, patient_id: int) -> dict[str, int]:
    return {
        table: int(
            session.scalar(
                text(f"SELECT count(*) FROM {table} WHERE patient_id = :p AND NOT voided"),
                {"p": patient_id},
            )
            or 0
        )
        for table in TABLES
    }


def _linked(session: Session, system: str, table: str, source_id: str) -> int:
    target = session.scalar(
        select(ImportLink.target_id).where(
            ImportLink.source_system == system,
            ImportLink.source_table == table,
            ImportLink.source_id == source_id,
        )
    )
    assert target is not None, (system, table, source_id)
    return int(target)


@pytest.fixture(scope="module")
def sample_c_url(fresh_database: Callable[[str], str]) -> Iterator[str]:
    """A database holding the sample_c Synthea export."""
    from cims.security.bootstrap import ensure_roles_and_privileges

    url = fresh_database("fhir_source")
    engine = create_engine(url)
    with Session(engine) as session:
        ensure_roles_and_privileges(session)
        import_synthea(
            session=session,
            actor=factories.actor(session, "admin"),
            folder=DATA / "synthea" / "sample_c",
        )
        session.commit()
    engine.dispose()
    yield url


def test_export_validates_against_r4b_and_round_trips(
    sample_c_url: str, fresh_database: Callable[[str], str]
) -> None:
    from cims.security.bootstrap import ensure_roles_and_privileges

    source = create_engine(sample_c_url)
    with Session(source) as session:
        staff = factories.actor(session, "data_staff")
        lines = list(export_all_fhir(session=session, actor=staff))
        assert len(lines) == 11
        # R4B validation is slow (~1 ms per resource): the import below validates each
        # round-tripped bundle; the five smallest keep the test quick.
        bundles = sorted((json.loads(line) for line in lines), key=lambda b: len(b["entry"]))
        expected = []
        for bundle in bundles[:5]:
            mrn = bundle["entry"][0]["resource"]["identifier"][0]["value"]
            patient_id = session.scalar(text("SELECT id FROM patients WHERE mrn = :m"), {"m": mrn})
            expected.append(_counts(session, int(patient_id)))
        types = {e["resource"]["resourceType"] for b in bundles for e in b["entry"]}
        assert {"Patient", "Encounter", "Condition", "Observation", "MedicationRequest"} <= types
        assert {"AllergyIntolerance", "Procedure", "Immunization"} <= types
        session.rollback()
    source.dispose()

    target = create_engine(fresh_database("fhir_target"))
    with Session(target) as session:
        ensure_roles_and_privileges(session)
        admin = factories.actor(session, "admin")
        for bundle in bundles[:5]:
            report = import_fhir_bundle(session=session, actor=admin, bundle=bundle)
            assert report.rejected_counts == {}
        got = [
            _counts(session, _linked(session, "fhir", "Patient", b["entry"][0]["resource"]["id"]))
            for b in bundles[:5]
        ]
        assert got == expected and sum(c["encounters"] for c in got) > 0
        # Importing the same bundles again adds nothing.
        again = import_fhir_bundle(session=session, actor=admin, bundle=bundles[0])
        assert again.added == {}
        session.commit()
    target.dispose()


def test_shared_bundles_match_the_csv_import_per_patient(session: Session) -> None:
    assert len(BUNDLES) == 8
    admin = factories.actor(session, "admin")
    import_synthea(session=session, actor=admin, folder=DATA / "synthea" / "sample_a")
    for path in BUNDLES:
        report = import_fhir_bundle(
            session=session, actor=admin, bundle=path.read_text("utf-8"), label=path.name
        )
        assert report.rejected_counts == {}, path.name
        assert "Claim" in report.unknown["resource_types"]  # reported, not fatal
        source_id = json.loads(path.read_text("utf-8"))["entry"][0]["resource"]["id"]
        from_csv = _counts(session, _linked(session, "synthea", "patients", source_id))
        from_fhir = _counts(session, _linked(session, "fhir", "Patient", source_id))
        assert from_csv["encounters"] > 0
        for table in ("encounters", "diagnoses", "problems"):
            assert from_fhir[table] == from_csv[table], (path.name, table)


def test_one_patient_export_is_audited_and_guarded(session: Session) -> None:
    patient = factories.patient(session)
    bundle = export_patient_fhir(
        session=session, actor=factories.actor(session, "data_staff"), patient_id=patient.id
    )
    Bundle.model_validate(bundle)
    assert bundle["entry"][0]["resource"]["identifier"][0]["value"] == patient.mrn
    with pytest.raises(AccessDenied):
        export_patient_fhir(
            session=session, actor=factories.actor(session, "nurse"), patient_id=patient.id
        )
    start_lockdown(session=session, actor=factories.actor(session, "admin"), reason="drill")
    with pytest.raises(LockdownActive):
        export_patient_fhir(
            session=session, actor=factories.actor(session, "data_staff"), patient_id=patient.id
        )


def test_invalid_bundle_is_refused(session: Session) -> None:
    with pytest.raises(InvalidImport) as refused:
        import_fhir_bundle(
            session=session,
            actor=factories.actor(session, "admin"),
            bundle={
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{"resource": {"resourceType": "Patient", "birthDate": "someday"}}],
            },
        )
    assert refused.value.problems == ["import.invalid_fhir"]
