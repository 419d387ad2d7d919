"""Import a Synthea CSV export (any recent layout) at COPY speed, all or nothing.

Each file is COPYed into a TEMP staging table, checked row by row with set-based UPDATEs
(a rejected row keeps its file line and reason), then moved into the CIMS tables with one
INSERT ... SELECT per target. ``import_links`` records which CIMS row each Synthea row
became, so importing the same export again adds nothing. Everything runs in the caller's
transaction: a failure, or a killed process, leaves the database as it was.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.governance.models import ImportRun
from cims.interop import synthea_claims, synthea_clinical, synthea_people, synthea_stager
from cims.interop.synthea_layout import (
    KNOWN,
    UNMAPPED,
    count_rows,
    detect_layout,
    stage_file,
)
from cims.interop.synthea_steps import (
    Context,
    can_check_keys_set_based,
    collect,
    finish_checks,
)
from cims.security import audit
from cims.security.crypto import load_cipher
from cims.security.rbac import Actor, Privilege, requires

Progress = Callable[[float, str], None]

# Every table the loaders write (their foreign keys are checked set-based when allowed).
TARGETS: Final = (
    "departments",
    "users",
    "user_roles",
    "user_departments",
    "patients",
    "patient_identifiers",
    "encounters",
    "diagnoses",
    "problems",
    "prescriptions",
    "procedures",
    "allergies",
    "treatment_plans",
    "observations",
    "invoices",
    "charges",
    "payments",
    "import_links",
)
# In load order (referenced rows first); each loader checks, yields, then writes.
_LOADERS: Final[tuple[tuple[str, Callable[..., Iterator[None]]], ...]] = (
    ("organizations", synthea_people.load_organizations),
    ("providers", synthea_people.load_providers),
    ("payers", synthea_people.load_payers),
    ("patients", synthea_people.load_patients),
    ("encounters", synthea_clinical.load_encounters),
    ("payer_transitions", synthea_people.load_payer_transitions),
    ("conditions", synthea_clinical.load_conditions),
    ("medications", synthea_clinical.load_medications),
    ("procedures", synthea_clinical.load_procedures),
    ("immunizations", synthea_clinical.load_immunizations),
    ("allergies", synthea_clinical.load_allergies),
    ("careplans", synthea_clinical.load_careplans),
    ("observations", synthea_clinical.load_observations),
    ("claims", synthea_claims.load_claims),
    ("claims_transactions", synthea_claims.load_claims_transactions),
)


class InvalidImport(ValueError):
    """The import was refused before anything was written; ``problems`` are message keys."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(", ".join(problems))


@dataclass(frozen=True)
class ImportReport:
    """What one import read, added, skipped (already imported) and rejected (with reasons)."""

    run_id: int
    layout: str
    read: dict[str, int]
    added: dict[str, int]
    skipped: dict[str, int]
    rejected_counts: dict[str, int]
    rejected: dict[str, list[dict[str, Any]]]
    unknown: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    connections: int = 1  # 2 when a stager checked the files aside (see synthea_stager)

    @property
    def rows_read(self) -> int:
        """All data rows read from the recognised files."""
        return sum(self.read.values())

    @property
    def rows_added(self) -> int:
        """All rows added to CIMS tables."""
        return sum(v for k, v in self.added.items() if "." not in k and k != "insurance_payers")

    def rejected_rows(self) -> list[tuple[str, int, str]]:
        """(file, line, reason) of every stored rejection."""
        return [
            (f"{stem}.csv", row["line"], row["reason"])
            for stem, rows in sorted(self.rejected.items())
            for row in rows
        ]

    def rejected_csv(self) -> str:
        """The rejected rows as CSV (file, line, reason) for download."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["file", "line", "reason"])
        writer.writerows(self.rejected_rows())
        return out.getvalue()


def _raw_cursor(session: Session) -> Any:
    """A psycopg cursor on the session's own connection (same transaction)."""
    return session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]


def _unknown_files(folder: Path) -> dict[str, Any]:
    names = sorted(p.stem for p in folder.glob("*.csv"))
    return {
        "files": [f"{n}.csv" for n in names if n not in KNOWN and n not in UNMAPPED],
        "unmapped_files": {
            f"{n}.csv": count_rows(folder / f"{n}.csv") for n in names if n in UNMAPPED
        },
    }


@requires(Privilege.IMPORT_DATA)
def import_synthea(
    *,
    session: Session,
    actor: Actor,
    folder: Path,
    progress: Progress | None = None,
    parallel: bool | None = None,
) -> ImportReport:
    """Load a Synthea CSV folder into CIMS in the caller's transaction; returns the report.

    ``parallel``: check files on a second connection while this one writes (see
    ``synthea_stager``); by default whenever the caller's transaction has written nothing
    and the schema is there (True forces it, False forbids it).
    """
    folder = Path(folder)
    try:
        is_folder = folder.is_dir()
    except OSError:  # e.g. a name longer than the file system allows
        is_folder = False
    if not is_folder:
        raise InvalidImport(["import.not_a_folder"])
    if not (folder / "patients.csv").exists():
        raise InvalidImport(["import.no_patients_file"])
    started = time.perf_counter()
    notify = progress or (lambda _fraction, _step: None)
    cursor = _raw_cursor(session)
    # Checking aside needs a transaction that has written nothing yet (see the stager).
    aside = synthea_stager.available(cursor) if parallel is None else parallel
    # One import at a time: two runs of the same export must not both see "not yet linked".
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('cims.import.synthea'))"))
    # Room to hash whole files in memory instead of spilling to disk (this transaction only).
    session.execute(text("SET LOCAL work_mem = '128MB'"))
    layout = detect_layout(folder)
    run = ImportRun(
        source_system="synthea",
        source_label=folder.name,
        layout=layout,
        started_by_id=actor.user_id,
    )
    session.add(run)
    session.flush()
    cipher = load_cipher(session)
    ctx = Context(main=cursor, run_id=run.id, actor_id=actor.user_id)
    ctx.set_based_keys = can_check_keys_set_based(ctx, TARGETS)
    ctx.input_checks = cursor.connection.info.server_version >= 160000
    unknown = _unknown_files(folder)
    unknown_columns: dict[str, list[str]] = {}
    staged: list[str] = []
    stager = None
    search_path = None
    if aside:
        # This transaction reads the stager's tables by name, after its own TEMP ones.
        cursor.execute("SHOW search_path")
        search_path = cursor.fetchone()[0]
        cursor.execute(
            "SELECT set_config('search_path', %s || ', ' || %s, true)",
            (search_path, synthea_stager.SCHEMA),
        )
        stager = synthea_stager.Stager(session.get_bind().engine, ctx, folder, _LOADERS)
        stager.start()
    failed = True
    # With a stager the patients go first: the stager needs their id map after the payers.
    order = sorted(_LOADERS, key=lambda step: step[0] != "patients") if stager else _LOADERS
    try:
        for position, (stem, loader) in enumerate(order):
            notify(position / len(_LOADERS), stem)
            if stem == "patients" or stager is None:
                result = stage_file(cursor, folder, stem)
                resume = None
                if result is not None:
                    resume = loader(ctx, cipher) if stem == "patients" else loader(ctx)
                    next(resume)
                    finish_checks(ctx, f"stg_{stem}")
            else:
                _stem, result, resume = stager.next()
            if result is not None and resume is not None:
                staged.append(stem)
                if result.unknown_columns:
                    unknown_columns[f"{stem}.csv"] = result.unknown_columns
                next(resume, None)
                collect(ctx, stem, f"stg_{stem}")
            if stem == "patients" and stager is not None:
                # Always, even empty (the file gone since the start): the stager waits for it.
                people: list[tuple[Any, ...]] = []
                if result is not None:
                    cursor.execute(
                        "SELECT src, new_id, linked_id FROM stg_patients WHERE reject IS NULL"
                    )
                    people = cursor.fetchall()
                stager.give_patients(people)
        failed = False
    finally:
        if stager is not None:
            stager.close(failed=failed)
    unknown["columns"] = unknown_columns
    for stem in staged:
        cursor.execute(f"DROP TABLE IF EXISTS stg_{stem}")
    if stager is not None:
        cursor.execute(f"DROP TABLE IF EXISTS {synthea_stager.PATIENT_MAP}")
        cursor.execute("SELECT set_config('search_path', %s, true)", (search_path,))
    run.status = "succeeded"
    run.finished_at = utcnow()
    run.counts = {"read": ctx.read, "added": ctx.counts, "skipped": ctx.skipped}
    run.rejected = {"counts": ctx.rejected_counts, "rows": ctx.rejected}
    run.unknown = unknown
    session.flush()
    report = ImportReport(
        run_id=run.id,
        layout=layout,
        read=ctx.read,
        added=ctx.counts,
        skipped=ctx.skipped,
        rejected_counts=ctx.rejected_counts,
        rejected=ctx.rejected,
        unknown=unknown,
        seconds=time.perf_counter() - started,
        connections=2 if aside else 1,
    )
    audit.record(
        session,
        actor,
        "interop.import_synthea",
        object_type="import_run",
        object_id=run.id,
        detail={
            "layout": layout,
            "rows_read": report.rows_read,
            "rows_added": report.rows_added,
            "rejected": sum(ctx.rejected_counts.values()),
        },
    )
    notify(1.0, "done")
    return report


@dataclass(frozen=True)
class RunSummary:
    """One past import as listed on the import page."""

    id: int
    source_system: str
    source_label: str
    layout: str | None
    started_at: Any
    status: str
    rows_added: int
    rejected: int


@requires(Privilege.IMPORT_DATA)
def list_import_runs(*, session: Session, actor: Actor, limit: int = 20) -> list[RunSummary]:
    """The most recent import runs (newest first) with their totals."""
    runs = session.scalars(select(ImportRun).order_by(ImportRun.id.desc()).limit(limit))
    return [
        RunSummary(
            id=run.id,
            source_system=run.source_system,
            source_label=run.source_label,
            layout=run.layout,
            started_at=run.started_at,
            status=run.status,
            rows_added=sum(
                v
                for k, v in ((run.counts or {}).get("added") or {}).items()
                if "." not in k and k != "insurance_payers"
            ),
            rejected=sum(((run.rejected or {}).get("counts") or {}).values()),
        )
        for run in runs
    ]
