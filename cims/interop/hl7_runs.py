"""Past HL7 imports for the import page: the runs, and their refused messages as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from cims.governance.models import ImportRun
from cims.interop.hl7_oru import SOURCE
from cims.security import audit
from cims.security.rbac import Actor, Privilege, requires

_CSV_COLUMNS: Final = ("file", "message", "control_id", "ack", "mrn", "reason")


def unmatched_csv(rows: list[dict[str, Any]], label: str) -> str:
    """Refused messages of one run as CSV (file, message, control_id, ack, mrn, reason)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_CSV_COLUMNS)
    for row in rows:
        writer.writerow([label, *(row.get(key) for key in _CSV_COLUMNS[1:])])
    return out.getvalue()


@dataclass(frozen=True)
class Hl7Run:
    """A past HL7 import as the import page lists it."""

    id: int
    label: str
    started_at: dt.datetime
    messages: int
    added: int
    refused: int


@requires(Privilege.IMPORT_DATA)
def list_hl7_runs(*, session: Session, actor: Actor, limit: int = 10) -> list[Hl7Run]:
    """The latest HL7 imports, newest first, with their message and refusal counts."""
    runs = session.scalars(
        select(ImportRun)
        .where(ImportRun.source_system == SOURCE)
        .order_by(ImportRun.id.desc())
        .limit(limit)
    ).all()
    return [
        Hl7Run(
            id=run.id,
            label=run.source_label,
            started_at=run.started_at,
            messages=int(((run.counts or {}).get("read") or {}).get("messages", 0)),
            added=int(((run.counts or {}).get("added") or {}).get("observations", 0)),
            refused=int(((run.rejected or {}).get("counts") or {}).get("messages", 0)),
        )
        for run in runs
    ]


@requires(Privilege.IMPORT_DATA)
def export_hl7_unmatched(*, session: Session, actor: Actor, run_id: int) -> str:
    """The messages of one HL7 run that were not taken in, as CSV (audited: MRNs inside)."""
    run = session.get(ImportRun, run_id)
    if run is None or run.source_system != SOURCE:
        raise LookupError(run_id)
    rows = list(((run.rejected or {}).get("rows") or {}).get("messages") or [])
    audit.record(
        session,
        actor,
        "interop.export_hl7_unmatched",
        object_type="import_run",
        object_id=run.id,
        detail={"rows": len(rows)},
    )
    return unmatched_csv(rows, run.source_label)
