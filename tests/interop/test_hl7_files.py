"""HL7 files from outside: ``cims import hl7`` and the drop folder the scheduler watches."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session
from test_hl7_import import DATA, MRN_A, lab_patients
from test_pages import _signed_in_page
from typer.testing import CliRunner

import factories
from cims.base import utcnow
from cims.cli import app
from cims.config import get_settings
from cims.db import reset_engine
from cims.governance.models import JobRun
from cims.interop.hl7_drop import _claim, process_drop_folder
from cims.interop.hl7_oru import import_hl7
from cims.ops import scheduler
from cims.patients.models import Patient
from cims.records.models import Observation
from cims.security.accounts import build_actor
from cims.security.bootstrap import ensure_roles_and_privileges
from cims.security.models import AuditEvent, User

HL7_JOB = tuple(job for job in scheduler.JOBS if job.name == "import_hl7_drop")


@pytest.fixture(scope="module")
def lab_engine(
    fresh_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A database of its own (imports commit) with an admin, a nurse and the lab patients."""
    url = fresh_database("hl7_files")
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        ensure_roles_and_privileges(session)
        factories.user(session, "admin", username="admin")
        factories.user(session, "nurse", username="nurse")
        lab_patients(session)
    patch = pytest.MonkeyPatch()
    patch.setenv("CIMS_DATABASE_URL", url)
    patch.setenv("CIMS_HL7_DROP_DIR", str(tmp_path_factory.mktemp("hl7") / "in"))
    get_settings.cache_clear()
    reset_engine()
    yield engine
    patch.undo()
    get_settings.cache_clear()
    reset_engine()
    engine.dispose()


def _observations(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(Observation)) or 0)


def test_import_hl7_command_has_help() -> None:
    result = CliRunner().invoke(app, ["import", "hl7", "--help"])
    assert result.exit_code == 0, result.output
    assert "--ack-dir" in result.output and "ORU^R01" in result.output


def test_command_imports_files_and_prints_acks(lab_engine: Engine) -> None:
    result = CliRunner().invoke(
        app, ["import", "hl7", str(DATA / "cbc.hl7"), str(DATA / "lipid.hl7"), "--as", "admin"]
    )
    assert result.exit_code == 0, result.output
    assert "MSA|AA|LAB-CBC-0001" in result.stdout and "MSA|AA|LAB-LIP-0001" in result.stdout
    assert "cbc.hl7: 1 message(s), 1 accepted (0 already imported), 4 result(s) added" in (
        result.stderr
    )
    count = _observations(lab_engine)
    again = CliRunner().invoke(app, ["import", "hl7", str(DATA / "cbc.hl7")])
    assert again.exit_code == 0 and "1 accepted (1 already imported)" in again.stderr
    assert _observations(lab_engine) == count


def test_command_exits_nonzero_and_writes_ack_files_when_a_message_is_refused(
    lab_engine: Engine, tmp_path: Path
) -> None:
    acks = tmp_path / "acks"
    files = [str(DATA / "unknown_mrn.hl7"), str(DATA / "mllp_newlines.hl7")]
    result = CliRunner().invoke(app, ["import", "hl7", *files, "--ack-dir", str(acks)])
    assert result.exit_code == 1, result.output
    assert "message 1 LAB-UNK-0001: AE unknown patient" in result.stdout
    assert "mllp_newlines.hl7: 2 message(s), 2 accepted" in result.stdout
    refused = (acks / "unknown_mrn.hl7.ack").read_bytes().decode()
    assert "\rMSA|AE|LAB-UNK-0001|" in refused and "\rERR|||204^" in refused
    accepted = (acks / "mllp_newlines.hl7.ack").read_bytes().decode()
    assert accepted.count("\rMSA|AA|") == 2


def test_command_refuses_an_account_without_the_privilege(lab_engine: Engine) -> None:
    count = _observations(lab_engine)
    result = CliRunner().invoke(app, ["import", "hl7", str(DATA / "bmp.hl7"), "--as", "nurse"])
    assert result.exit_code == 1 and "nurse may not import data" in result.output
    missing = CliRunner().invoke(app, ["import", "hl7", "no-such-file.hl7"])
    assert missing.exit_code == 2 and "no such file" in missing.output
    assert _observations(lab_engine) == count


def test_scheduler_job_moves_files_to_done_and_error_with_their_acks(lab_engine: Engine) -> None:
    folder = get_settings().hl7_drop_dir
    assert folder is not None
    assert scheduler.run_due_jobs(lab_engine, now=utcnow(), jobs=HL7_JOB) == ["import_hl7_drop"]
    with Session(lab_engine) as session:
        first = session.scalars(select(JobRun).where(JobRun.job == "import_hl7_drop")).one()
        assert first.detail == {"skipped": "no drop folder"}  # nothing happens without it
    folder.mkdir(parents=True)
    for name in ("bmp.hl7", "corrected.hl7", "unknown_mrn.hl7"):
        shutil.copy(DATA / name, folder / name)
    (folder / "half-written.hl7.part").write_text("MSH|^~\\&|", encoding="utf-8")
    later = utcnow() + dt.timedelta(minutes=1)
    assert scheduler.run_due_jobs(lab_engine, now=later, jobs=HL7_JOB) == ["import_hl7_drop"]
    assert sorted(p.name for p in (folder / "done").iterdir()) == [
        "bmp.hl7", "bmp.hl7.ack", "corrected.hl7", "corrected.hl7.ack",
    ]  # fmt: skip
    assert sorted(p.name for p in (folder / "error").iterdir()) == [
        "unknown_mrn.hl7", "unknown_mrn.hl7.ack",
    ]  # fmt: skip
    assert "MSA|AE|LAB-UNK-0001" in (folder / "error" / "unknown_mrn.hl7.ack").read_text()
    assert "MSA|AA|LAB-BMP-0002" in (folder / "done" / "corrected.hl7.ack").read_text()
    assert [p.name for p in folder.iterdir() if p.is_file()] == ["half-written.hl7.part"]
    assert list((folder / ".work").iterdir()) == []
    with Session(lab_engine) as session:
        run = session.scalars(
            select(JobRun).where(JobRun.job == "import_hl7_drop").order_by(JobRun.id.desc())
        ).first()
        assert run is not None and run.status == "succeeded"
        assert run.detail == {"files": 3, "done": 2, "error": 1, "messages": 3, "refused": 1}
        potassium = session.scalars(
            select(Observation)
            .join(Patient, Patient.id == Observation.patient_id)
            .where(Patient.mrn == "0007700024", Observation.code == "2823-3")
            .order_by(Observation.id)
        ).all()
        assert [(str(o.value_num), o.voided) for o in potassium] == [
            ("5.8000", True), ("4.6000", False),
        ]  # fmt: skip


def test_two_processes_never_take_the_same_file(lab_engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / ".work").mkdir(parents=True)
    shutil.copy(DATA / "cbc.hl7", folder / "cbc.hl7")
    assert _claim(folder / "cbc.hl7", folder / ".work") is not None
    assert _claim(folder / "cbc.hl7", folder / ".work") is None  # the other process lost
    shutil.rmtree(folder / ".work")
    for n in range(8):
        shutil.copy(DATA / "chinese.hl7", folder / f"batch-{n}.hl7")
    summaries: list[dict[str, int]] = []

    def worker() -> None:
        summaries.append(process_drop_folder(lab_engine, folder=folder, username="admin"))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(s["files"] for s in summaries) == 8
    assert sum(s["done"] for s in summaries) == 8
    assert len([p for p in (folder / "done").iterdir() if p.suffix == ".hl7"]) == 8


def test_a_claim_abandoned_by_a_dead_process_is_taken_up_again(
    lab_engine: Engine, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    (folder / ".work").mkdir(parents=True)
    abandoned = folder / ".work" / "0123456789ab__lipid.hl7"
    shutil.copy(DATA / "lipid.hl7", abandoned)
    summary = process_drop_folder(lab_engine, folder=folder, username="admin")
    assert summary["files"] == 0  # a fresh claim belongs to a process still working on it
    an_hour_ago = (utcnow() - dt.timedelta(hours=1)).timestamp()
    os.utime(abandoned, (an_hour_ago, an_hour_ago))
    summary = process_drop_folder(lab_engine, folder=folder, username="admin")
    assert summary == {"files": 1, "done": 1, "error": 0, "messages": 1, "refused": 0}
    assert (folder / "done" / "lipid.hl7.ack").exists()
    with Session(lab_engine) as session:
        patient = session.scalars(select(Patient).where(Patient.mrn == MRN_A)).one()
        assert (
            session.scalar(
                select(func.count()).where(
                    Observation.patient_id == patient.id, Observation.code == "2093-3"
                )
            )
            == 1
        )


def test_import_page_lists_refused_messages_for_download(lab_engine: Engine) -> None:
    with Session(lab_engine) as session, session.begin():
        admin = build_actor(
            session, session.scalars(select(User).where(User.username == "admin")).one()
        )
        report = import_hl7(
            session=session,
            actor=admin,
            data=(DATA / "no_obx.hl7").read_bytes(),
            label="no_obx.hl7",
        )
    url = lab_engine.url.render_as_string(hide_password=False)
    at = _signed_in_page(url, "admin", "pages/admin_import.py")
    assert not at.exception, at.exception
    assert "Import lab results (HL7 v2)" in [h.value for h in at.subheader]
    choice = at.selectbox(key="import_hl7_run")
    assert choice.value == report.run_id and "no_obx.hl7" in choice.format_func(choice.value)
    at = at.button(key="import_hl7_prepare").click().run()
    assert not at.exception, at.exception
    with Session(lab_engine) as session:
        audited = session.scalar(
            select(func.count()).where(
                AuditEvent.action == "interop.export_hl7_unmatched",
                AuditEvent.object_id == str(report.run_id),
            )
        )
    assert audited == 1
    nurse = _signed_in_page(url, "nurse", "pages/admin_import.py")
    assert [e.value for e in nurse.error] == ["Your role is not allowed to do this."]
