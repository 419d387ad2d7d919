"""HL7 v2 ORU^R01 lab results into observations: matching, values, ACKs, idempotency."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import factories
from cims.governance.models import ImportRun
from cims.interop.hl7_oru import Hl7Report, import_hl7
from cims.interop.hl7_runs import export_hl7_unmatched, list_hl7_runs
from cims.patients.models import Patient
from cims.records.models import Encounter, Observation
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied, Actor

DATA = Path(__file__).parent / "data" / "hl7"
MRN_A, MRN_B, MRN_C, MRN_UNKNOWN = "0007700016", "0007700024", "0007700032", "0007799992"


def lab_patients(session: Session) -> dict[str, Patient]:
    """The three patients the fixture messages name (MRN and birth date as in their PID)."""
    return {
        "A": factories.patient(session, mrn=MRN_A, birth_date=dt.date(1960, 5, 1)),
        "B": factories.patient(
            session, mrn=MRN_B, full_name="李娜", family_name="李", given_name="娜",
            sex="F", birth_date=dt.date(1975, 3, 12),
        ),
        "C": factories.patient(session, mrn=MRN_C, birth_date=dt.date(1988, 11, 9)),
    }  # fmt: skip


def segments(ack: str) -> dict[str, list[str]]:
    """An ACK's segments by name, each split into fields (MSH-1 is the field separator)."""
    assert ack.endswith("\r") and "\n" not in ack
    found = {}
    for segment in ack.rstrip("\r").split("\r"):
        fields = segment.split("|")
        if fields[0] == "MSH":
            fields.insert(1, "|")
        found[fields[0]] = fields
    return found


def run(session: Session, actor: Actor, *names: str) -> list[Hl7Report]:
    return [
        import_hl7(session=session, actor=actor, data=(DATA / n).read_bytes(), label=n)
        for n in names
    ]


def labs(session: Session, patient: Patient, *, voided: bool = False) -> dict[str, Observation]:
    rows = session.scalars(
        select(Observation).where(
            Observation.patient_id == patient.id, Observation.voided.is_(voided)
        )
    ).all()
    return {f"{row.code}{'/' + str(row.id) if voided else ''}": row for row in rows}


@pytest.fixture
def admin(session: Session) -> Actor:
    return factories.actor(session, "admin")


def test_a_cbc_is_stored_with_units_ranges_and_flags_and_acknowledged(
    session: Session, admin: Actor
) -> None:
    patients = lab_patients(session)
    [report] = run(session, admin, "cbc.hl7")
    [outcome] = report.outcomes
    assert (outcome.ack_code, outcome.added, outcome.patient_id) == ("AA", 4, patients["A"].id)
    stored = labs(session, patients["A"])
    assert set(stored) == {"6690-2", "789-8", "718-7", "777-3"}
    hgb = stored["718-7"]
    assert (hgb.value_num, hgb.unit, hgb.ref_low, hgb.ref_high) == (
        Decimal("118"), "g/L", Decimal("130"), Decimal("175"),
    )  # fmt: skip
    assert (hgb.abnormal_flag, hgb.result_status, hgb.category, hgb.code_system) == (
        "L", "F", "lab", "LOINC",
    )  # fmt: skip
    assert hgb.name == "Hemoglobin [Mass/volume] in Blood"
    # OBX-14 20261120083000+0800 is 00:30 UTC; the lab sent no flag for platelets: computed.
    assert hgb.observed_at == dt.datetime(2026, 11, 20, 0, 30, tzinfo=dt.UTC)
    assert stored["777-3"].abnormal_flag == "N"
    assert hgb.recorded_by_id == admin.user_id
    ack = segments(outcome.ack)
    assert ack["MSA"][1:3] == ["AA", "LAB-CBC-0001"]
    assert ack["MSH"][9] == "ACK^R01^ACK" and ack["MSH"][5:7] == ["RAYLIS", "CENTRAL LAB"]
    assert ack["MSH"][12] == "2.5.1" and "ERR" not in ack


def test_bmp_high_potassium_and_lipid_ranges_written_as_limits(
    session: Session, admin: Actor
) -> None:
    patients = lab_patients(session)
    encounter = Encounter(
        patient_id=patients["B"].id,
        encounter_type="outpatient",
        department_id=factories.department(session).id,
        started_at=dt.datetime(2026, 11, 20, 0, 0, tzinfo=dt.UTC),
        status="open",
    )
    session.add(encounter)
    session.flush()
    run(session, admin, "bmp.hl7", "lipid.hl7")
    bmp = labs(session, patients["B"])
    potassium = bmp["2823-3"]
    assert (potassium.value_num, potassium.abnormal_flag, potassium.unit) == (
        Decimal("5.8"), "H", "mmol/L",
    )  # fmt: skip
    assert (potassium.ref_low, potassium.ref_high, potassium.ref_text) == (
        Decimal("3.5"), Decimal("5.1"), "3.5-5.1",
    )  # fmt: skip
    # Filed under the open visit, so the abnormal-lab reminder reaches its attending.
    assert potassium.encounter_id == encounter.id
    lipid = labs(session, patients["A"])
    cholesterol, hdl, ldl = lipid["2093-3"], lipid["2085-9"], lipid["18262-6"]
    assert (cholesterol.ref_low, cholesterol.ref_high, cholesterol.ref_text) == (
        None, Decimal("200"), "<200",
    )  # fmt: skip
    assert cholesterol.abnormal_flag == "H" and cholesterol.unit == "mg/dL"
    assert (hdl.ref_low, hdl.ref_high) == (Decimal("40"), None)
    assert (ldl.value_num, ldl.abnormal_flag) == (Decimal("131"), "H")  # SN "^131"
    triglycerides = session.scalars(
        select(Observation).where(
            Observation.patient_id == patients["A"].id, Observation.code == "2571-8"
        )
    ).all()
    assert {(t.value_num, t.value_text) for t in triglycerides} == {
        (None, "<10"), (Decimal("140"), None),
    }  # fmt: skip
    assert lipid["8251-1"].value_text == "Fasting 12 h & sample OK | checked"  # \T\ and \F\


def test_resending_a_message_adds_nothing_and_is_acknowledged_again(
    session: Session, admin: Actor
) -> None:
    patients = lab_patients(session)
    run(session, admin, "cbc.hl7")
    before = session.scalar(select(func.count()).select_from(Observation))
    [again] = run(session, admin, "cbc.hl7")
    assert session.scalar(select(func.count()).select_from(Observation)) == before
    [outcome] = again.outcomes
    assert outcome.duplicate and outcome.added == 0
    assert segments(outcome.ack)["MSA"][1:3] == ["AA", "LAB-CBC-0001"]
    assert len(labs(session, patients["A"])) == 4


def test_a_corrected_result_supersedes_the_earlier_value_without_deleting_it(
    session: Session, admin: Actor
) -> None:
    patients = lab_patients(session)
    run(session, admin, "bmp.hl7")
    first = labs(session, patients["B"])["2823-3"]
    [report] = run(session, admin, "corrected.hl7")
    [outcome] = report.outcomes
    assert (outcome.ack_code, outcome.added, outcome.corrected) == ("AA", 1, 1)
    current = labs(session, patients["B"])
    assert len(current) == 7
    potassium = current["2823-3"]
    assert (potassium.value_num, potassium.abnormal_flag, potassium.result_status) == (
        Decimal("4.6"), "N", "C",
    )  # fmt: skip
    assert potassium.corrects_id == first.id
    session.refresh(first)
    assert first.voided and first.value_num == Decimal("5.8")
    assert "LAB-BMP-0002" in (first.void_reason or "")
    # The correction itself re-sent: nothing more.
    [again] = run(session, admin, "corrected.hl7")
    assert again.outcomes[0].duplicate
    assert len(labs(session, patients["B"], voided=True)) == 1


def test_unknown_mrn_malformed_and_empty_messages_are_refused_and_reported(
    session: Session, admin: Actor
) -> None:
    lab_patients(session)
    before = session.scalar(select(func.count()).select_from(Observation))
    reports = run(session, admin, "unknown_mrn.hl7", "malformed.hl7", "no_obx.hl7", "adt.hl7")
    assert session.scalar(select(func.count()).select_from(Observation)) == before
    outcomes = [r.outcomes[0] for r in reports]
    assert [o.ack_code for o in outcomes] == ["AE", "AE", "AE", "AR"]
    unknown, malformed, empty, adt = (segments(o.ack) for o in outcomes)
    assert unknown["MSA"][1:3] == ["AE", "LAB-UNK-0001"]
    assert unknown["ERR"][3].startswith("204^")
    assert MRN_UNKNOWN in unknown["MSA"][3]
    assert malformed["MSA"][2] == "LAB-BAD-0001" and "'5..2' is not a number" in malformed["MSA"][3]
    assert empty["MSA"][2] == "LAB-NOOBX-0001" and "no result (OBX)" in empty["MSA"][3]
    assert adt["MSA"][1:3] == ["AR", "ADT-0001"] and adt["ERR"][3].startswith("200^")
    run_row = session.get(ImportRun, reports[0].run_id)
    assert run_row is not None and run_row.source_system == "hl7"
    assert run_row.rejected is not None
    [row] = run_row.rejected["rows"]["messages"]
    assert (row["control_id"], row["mrn"], row["ack"]) == ("LAB-UNK-0001", MRN_UNKNOWN, "AE")
    text = export_hl7_unmatched(session=session, actor=admin, run_id=reports[0].run_id)
    [line] = list(csv.DictReader(io.StringIO(text)))
    assert line["file"] == "unknown_mrn.hl7" and line["mrn"] == MRN_UNKNOWN
    assert "unknown patient" in line["reason"]
    listed = {r.id: r for r in list_hl7_runs(session=session, actor=admin)}
    assert listed[reports[0].run_id].refused == 1


def test_unknown_patient_becomes_importable_once_registered(session: Session, admin: Actor) -> None:
    run(session, admin, "unknown_mrn.hl7")
    patient = factories.patient(session, mrn=MRN_UNKNOWN, birth_date=dt.date(1990, 1, 1))
    [report] = run(session, admin, "unknown_mrn.hl7")
    assert report.outcomes[0].ack_code == "AA" and report.outcomes[0].patient_id == patient.id


def test_birth_date_that_contradicts_the_mrn_is_refused(session: Session, admin: Actor) -> None:
    factories.patient(session, mrn=MRN_A, birth_date=dt.date(1961, 1, 1))
    [report] = run(session, admin, "cbc.hl7")
    assert report.outcomes[0].ack_code == "AE"
    assert "birth date" in (report.outcomes[0].reason or "")


def test_mllp_framed_newline_file_with_two_messages(session: Session, admin: Actor) -> None:
    patients = lab_patients(session)
    [report] = run(session, admin, "mllp_newlines.hl7")
    assert [(o.control_id, o.ack_code) for o in report.outcomes] == [
        ("LAB-UA-0001", "AA"), ("LAB-UA-0002", "AA"),
    ]  # fmt: skip
    stored = labs(session, patients["C"])
    protein = stored["2888-6"]
    assert (protein.value_text, protein.value_num, protein.ref_text) == (
        "Negative",
        None,
        "Negative",
    )
    assert stored["2345-7"].abnormal_flag == "LL"
    assert report.acks.count("MSH|") == 2


def test_chinese_text_results_in_utf8_and_gb18030(session: Session, admin: Actor) -> None:
    patients = lab_patients(session)
    reports = run(session, admin, "chinese.hl7", "chinese_gb18030.hl7")
    assert [r.outcomes[0].ack_code for r in reports] == ["AA", "AA"]
    comments = session.scalars(
        select(Observation.value_text).where(
            Observation.patient_id == patients["B"].id, Observation.code == "8251-1"
        )
    ).all()
    assert comments == ["标本轻度溶血，钾结果仅供参考，建议复查"]
    # The GB 18030 file carries the same results under a new control id: read as the same
    # text, so nothing is stored twice.
    assert [(r.outcomes[0].added, r.outcomes[0].unchanged) for r in reports] == [(2, 0), (0, 2)]
    sensitivity = session.scalars(
        select(Observation).where(
            Observation.patient_id == patients["B"].id, Observation.code == "18769-0"
        )
    ).first()
    assert sensitivity is not None and sensitivity.name == "微生物药敏"
    assert sensitivity.value_text == "金黄色葡萄球菌\n对苯唑西林敏感"  # two repetitions


def test_each_message_is_audited_with_its_patient(session: Session, admin: Actor) -> None:
    patients = lab_patients(session)
    start = session.scalar(select(func.max(AuditEvent.id))) or 0
    [report] = run(session, admin, "mllp_newlines.hl7")
    events = session.execute(
        select(AuditEvent.action, AuditEvent.patient_id, AuditEvent.object_id)
        .where(AuditEvent.id > start)
        .order_by(AuditEvent.id)
    ).all()
    assert [tuple(e) for e in events] == [
        ("interop.import_hl7_result", patients["C"].id, "LAB-UA-0001"),
        ("interop.import_hl7_result", patients["C"].id, "LAB-UA-0002"),
        ("interop.import_hl7", None, str(report.run_id)),
    ]


def test_a_nurse_may_not_import_lab_messages(session: Session) -> None:
    lab_patients(session)
    nurse = factories.actor(session, "nurse")
    before = session.scalar(select(func.count()).select_from(Observation))
    with pytest.raises(AccessDenied):
        import_hl7(session=session, actor=nurse, data=(DATA / "cbc.hl7").read_bytes())
    with pytest.raises(AccessDenied):
        export_hl7_unmatched(session=session, actor=nurse, run_id=1)
    assert session.scalar(select(func.count()).select_from(Observation)) == before
    assert session.scalar(select(func.count()).select_from(ImportRun).where(
        ImportRun.started_by_id == nurse.user_id)) == 0  # fmt: skip


def test_results_for_a_merged_record_land_on_the_surviving_patient(
    session: Session, admin: Actor
) -> None:
    survivor = factories.patient(session, birth_date=dt.date(1960, 5, 1))
    lab_patients(session)["A"].merged_into_id = survivor.id
    session.flush()
    [report] = run(session, admin, "cbc.hl7")
    assert report.outcomes[0].patient_id == survivor.id
    assert len(labs(session, survivor)) == 4


def test_a_preliminary_result_after_the_final_one_changes_nothing(
    session: Session, admin: Actor
) -> None:
    patients = lab_patients(session)
    run(session, admin, "corrected.hl7")  # the corrected potassium, first of its order
    late = (DATA / "corrected.hl7").read_text(encoding="utf-8")
    late = late.replace("LAB-BMP-0002", "LAB-BMP-0000").replace("|4.6|", "|5.8|")
    late = late.replace("|N|||C|", "|H|||P|")
    report = import_hl7(session=session, actor=admin, data=late, label="late.hl7")
    assert (report.outcomes[0].ack_code, report.outcomes[0].unchanged) == ("AA", 1)
    [potassium] = labs(session, patients["B"]).values()
    assert (potassium.value_num, potassium.result_status) == (Decimal("4.6"), "C")
