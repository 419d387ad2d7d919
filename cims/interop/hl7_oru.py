"""Lab results from a laboratory system: HL7 v2 ORU^R01 messages into observations.

Each message is taken in whole or not at all (a savepoint of its own) and answered with
an HL7 ACK: AA accepted, AE application error (unknown MRN, no result, bad value), AR
rejected (not an ORU^R01, unreadable). ``import_links`` make it idempotent: the sender and
MSH-10 control id of every accepted message (a re-sent message adds nothing and is
acknowledged AA again), and per result the sender, order, test and sub-id, pointing at
the current observation. A later different value for the same result (OBX-11 C corrected,
or a final after a preliminary) is a new row whose ``corrects_id`` points at the earlier
one, which is voided with the reason, never deleted. Every run is an ``ImportRun``
(source ``hl7``) whose rejected rows are the messages that could not be matched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.governance.models import ImportLink, ImportRun
from cims.interop.hl7_parse import (
    Header,
    LabMessage,
    LabResult,
    MessageProblem,
    build_ack,
    header_of,
    parse_oru,
    split_messages,
)
from cims.patients.models import Patient
from cims.patients.mrn import is_valid_mrn
from cims.records.encounters import latest_open_encounter_id
from cims.records.models import Observation
from cims.records.orders import abnormal_flag
from cims.security import audit
from cims.security.rbac import Actor, Privilege, requires

SOURCE: Final = "hl7"
_KEPT_REJECTIONS: Final = 500


@dataclass(frozen=True)
class MessageOutcome:
    """How one message went: its ACK code and text, and what it added."""

    index: int  # 1-based position in the file
    control_id: str
    ack_code: str  # AA, AE, AR
    reason: str | None
    ack: str  # the HL7 ACK message (segments ended by \r)
    patient_id: int | None = None
    mrn: str = ""
    added: int = 0
    corrected: int = 0
    unchanged: int = 0
    duplicate: bool = False

    @property
    def accepted(self) -> bool:
        """Acknowledged AA (a duplicate of an accepted message included)."""
        return self.ack_code == "AA"


@dataclass(frozen=True)
class Hl7Report:
    """One file's import: a run id and the outcome of each message."""

    run_id: int
    label: str
    outcomes: tuple[MessageOutcome, ...]

    @property
    def accepted(self) -> int:
        """Messages acknowledged AA."""
        return sum(o.accepted for o in self.outcomes)

    @property
    def refused(self) -> tuple[MessageOutcome, ...]:
        """Messages acknowledged AE or AR (nothing of them was stored)."""
        return tuple(o for o in self.outcomes if not o.accepted)

    @property
    def added(self) -> int:
        """Observations added (corrections included)."""
        return sum(o.added for o in self.outcomes)

    @property
    def acks(self) -> str:
        """Every ACK, in message order."""
        return "".join(o.ack for o in self.outcomes)


class _Refused(Exception):
    def __init__(self, problem: MessageProblem, mrn: str = "") -> None:
        self.problem, self.mrn = problem, mrn


def _live(session: Session, patient: Patient | None) -> Patient | None:
    """The patient, or the record it was merged into; None when voided."""
    for _ in range(5):
        if patient is None or patient.voided:
            return None
        if patient.merged_into_id is None:
            return patient
        patient = session.get(Patient, patient.merged_into_id)
    return None


def match_patient(session: Session, message: LabMessage) -> Patient:
    """The one live patient the message's MRNs name; _Refused (AE) when none or several."""
    mrns = [ref.identifier for ref in message.patient_ids if ref.could_be_mrn]
    shown = "~".join(mrns) or message.patient_ids[0].identifier
    candidates = [m for m in mrns if is_valid_mrn(m)]
    found = session.scalars(select(Patient).where(Patient.mrn.in_(candidates))).all()
    live = {p.id: p for p in (_live(session, row) for row in found) if p is not None}
    if not live:
        problem = MessageProblem("AE", "204", f"unknown patient: no record with MRN {shown}")
        raise _Refused(problem, shown)
    if len(live) > 1:
        problem = MessageProblem("AE", "204", f"MRNs {shown} name different patients")
        raise _Refused(problem, shown)
    patient = next(iter(live.values()))
    if message.birth_date and patient.birth_date and message.birth_date != patient.birth_date:
        problem = MessageProblem(
            "AE", "204", f"birth date {message.birth_date} does not match MRN {patient.mrn}"
        )
        raise _Refused(problem, shown)
    return patient


def _same(row: Observation, result: LabResult) -> bool:
    return (row.value_num, row.value_text, row.unit, row.abnormal_flag, row.ref_text) == (
        result.value_num,
        result.value_text,
        result.unit,
        _flag(result),
        result.ref_text,
    )


def _flag(result: LabResult) -> str | None:
    """The lab's flag; computed from the range only when the lab sent none."""
    if result.flag is not None or result.value_num is None:
        return result.flag
    if result.ref_low is None and result.ref_high is None:
        return None
    return abnormal_flag(result.value_num, result.ref_low, result.ref_high)


class _Store:
    """Writes one accepted message's results (inside the message's savepoint)."""

    def __init__(self, session: Session, actor: Actor, run: ImportRun, header: Header) -> None:
        self.session, self.actor, self.run, self.header = session, actor, run, header
        self.added = self.corrected = self.unchanged = 0

    def link(self, table: str, source_id: str, target_table: str, target_id: int) -> ImportLink:
        row = ImportLink(
            source_system=SOURCE,
            source_table=table,
            source_id=source_id,
            target_table=target_table,
            target_id=target_id,
            run_id=self.run.id,
        )
        self.session.add(row)
        return row

    def result(self, patient_id: int, encounter_id: int | None, key: str, r: LabResult) -> None:
        earlier = self.session.scalar(
            select(ImportLink).where(
                ImportLink.source_system == SOURCE,
                ImportLink.source_table == "OBX",
                ImportLink.source_id == key,
            )
        )
        previous = self.session.get(Observation, earlier.target_id) if earlier else None
        if previous is not None and (
            _same(previous, r) or (r.status == "P" and previous.result_status in ("F", "C"))
        ):
            self.unchanged += 1  # a repeat, or a preliminary arriving after the final
            return
        now = utcnow()
        row = Observation(
            patient_id=patient_id,
            encounter_id=encounter_id,
            category="lab",
            code_system=r.code_system,
            code=r.code,
            name=r.name,
            value_num=r.value_num,
            value_text=r.value_text,
            unit=r.unit,
            ref_low=r.ref_low,
            ref_high=r.ref_high,
            ref_text=r.ref_text,
            abnormal_flag=_flag(r),
            result_status=r.status,
            observed_at=r.observed_at or now,
            corrects_id=previous.id if previous is not None else None,
            recorded_by_id=self.actor.user_id,
            created_by_id=self.actor.user_id,
        )
        self.session.add(row)
        self.session.flush()
        self.added += 1
        if previous is None or earlier is None:
            self.link("OBX", key, "observations", row.id)
            return
        previous.voided, previous.voided_at = True, now
        previous.voided_by_id = self.actor.user_id
        previous.void_reason = f"corrected by the laboratory (message {self.header.control_id})"
        earlier.target_id = row.id
        self.corrected += 1


def _accepted_before(session: Session, message_key: str) -> bool:
    found = session.scalar(
        select(ImportLink.id).where(
            ImportLink.source_system == SOURCE,
            ImportLink.source_table == "MSH",
            ImportLink.source_id == message_key,
        )
    )
    return found is not None


def _import_message(
    session: Session, actor: Actor, run: ImportRun, index: int, text: str
) -> MessageOutcome:
    """Take in one message in its own savepoint; the outcome carries its ACK."""
    header = header_of(text)
    try:
        message = parse_oru(text)
    except MessageProblem as problem:
        return _refusal(index, header, problem, "")
    header = message.header
    message_key = f"{header.sender}|{header.control_id}"
    if _accepted_before(session, message_key):
        return _duplicate(index, header)
    try:
        with session.begin_nested():
            patient = match_patient(session, message)
            store = _Store(session, actor, run, header)
            store.link("MSH", message_key, "import_runs", run.id)
            session.flush()  # a concurrent import of the same message fails here
            encounter = latest_open_encounter_id(session, patient.id)
            seen: dict[str, int] = {}
            for result in message.results:
                key = f"{header.sender}|{result.order_key}|{result.code}|{result.sub_id}"
                seen[key] = seen.get(key, 0) + 1
                suffix = f"#{seen[key]}" if seen[key] > 1 else ""
                store.result(patient.id, encounter, key + suffix, result)
            session.flush()
            audit.record(
                session,
                actor,
                "interop.import_hl7_result",
                patient_id=patient.id,
                object_type="hl7_message",
                object_id=header.control_id,
                detail={"added": store.added, "corrected": store.corrected, "run": run.id},
            )
    except _Refused as refused:
        return _refusal(index, header, refused.problem, refused.mrn)
    except IntegrityError:  # another process took in this message (or its results) meanwhile
        if _accepted_before(session, message_key):
            return _duplicate(index, header)
        busy = MessageProblem("AE", "207", "results imported concurrently: send again")
        return _refusal(index, header, busy, "")
    note = "; ".join(message.skipped) or None
    return MessageOutcome(
        index=index,
        control_id=header.control_id,
        ack_code="AA",
        reason=note,
        ack=build_ack(header, "AA", reason=note),
        patient_id=patient.id,
        mrn=patient.mrn,
        added=store.added,
        corrected=store.corrected,
        unchanged=store.unchanged,
    )


def _refusal(index: int, header: Header, problem: MessageProblem, mrn: str) -> MessageOutcome:
    return MessageOutcome(
        index=index,
        control_id=header.control_id,
        ack_code=problem.ack_code,
        reason=problem.reason,
        ack=build_ack(
            header, problem.ack_code, reason=problem.reason, error_code=problem.error_code
        ),
        mrn=mrn,
    )


def _duplicate(index: int, header: Header) -> MessageOutcome:
    note = "duplicate: this message was already accepted"
    return MessageOutcome(
        index=index,
        control_id=header.control_id,
        ack_code="AA",
        reason=note,
        ack=build_ack(header, "AA", reason=note),
        duplicate=True,
    )


@requires(Privilege.IMPORT_DATA)
def import_hl7(
    *, session: Session, actor: Actor, data: bytes | str, label: str = "messages"
) -> Hl7Report:
    """Import a file of ORU^R01 messages (each whole or not at all); an ACK for every one."""
    run = ImportRun(
        source_system=SOURCE,
        source_label=label[:200],
        layout="hl7-v2-oru",
        started_by_id=actor.user_id,
    )
    session.add(run)
    session.flush()
    texts = split_messages(data)
    outcomes = tuple(
        _import_message(session, actor, run, index, text)
        for index, text in enumerate(texts, start=1)
    )
    refused = [o for o in outcomes if not o.accepted]
    rows = [
        {"message": o.index, "control_id": o.control_id, "ack": o.ack_code, "mrn": o.mrn}
        | {"line": o.index, "reason": o.reason or ""}
        for o in refused
    ]
    run.status, run.finished_at = "succeeded", utcnow()
    run.counts = {
        "read": {"messages": len(outcomes)},
        "added": {"observations": sum(o.added for o in outcomes)},
        "skipped": {
            "duplicate_messages": sum(o.duplicate for o in outcomes),
            "unchanged_results": sum(o.unchanged for o in outcomes),
        },
        "corrected": {"observations": sum(o.corrected for o in outcomes)},
    }
    run.rejected = {
        "counts": {"messages": len(refused)},
        "rows": {"messages": rows[:_KEPT_REJECTIONS]},
    }
    session.flush()
    audit.record(
        session,
        actor,
        "interop.import_hl7",
        object_type="import_run",
        object_id=run.id,
        detail={"messages": len(outcomes), "accepted": len(outcomes) - len(refused)},
    )
    return Hl7Report(run_id=run.id, label=label, outcomes=outcomes)
