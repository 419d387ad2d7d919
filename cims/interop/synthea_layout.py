"""Synthea CSV layouts: the files and columns we know, layout detection, COPY into staging.

Synthea changed its CSV layout between versions (2.x: ``procedures.DATE``,
``payer_transitions.START_YEAR``; 3.x: ``procedures.START/STOP``, ``SYSTEM`` columns,
``claims*.csv``). Every staging table gets the union of the known columns of its file, so
the set-based SQL reads both layouts; a column the file lacks is simply NULL there.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from psycopg import sql


def _cols(names: str) -> tuple[str, ...]:
    return tuple(names.split())


# File stem -> every column any supported layout has (upper case, as Synthea writes them).
KNOWN: Final[dict[str, tuple[str, ...]]] = {
    "organizations": _cols("ID NAME ADDRESS CITY STATE ZIP LAT LON PHONE REVENUE UTILIZATION"),
    "providers": _cols(
        "ID ORGANIZATION NAME GENDER SPECIALITY ADDRESS CITY STATE ZIP LAT LON "
        "UTILIZATION ENCOUNTERS PROCEDURES"
    ),
    "payers": _cols(
        "ID NAME OWNERSHIP ADDRESS CITY STATE_HEADQUARTERED ZIP PHONE AMOUNT_COVERED "
        "AMOUNT_UNCOVERED REVENUE COVERED_ENCOUNTERS UNCOVERED_ENCOUNTERS COVERED_MEDICATIONS "
        "UNCOVERED_MEDICATIONS COVERED_PROCEDURES UNCOVERED_PROCEDURES COVERED_IMMUNIZATIONS "
        "UNCOVERED_IMMUNIZATIONS UNIQUE_CUSTOMERS QOLS_AVG MEMBER_MONTHS"
    ),
    "patients": _cols(
        "ID BIRTHDATE DEATHDATE SSN DRIVERS PASSPORT PREFIX FIRST MIDDLE LAST SUFFIX MAIDEN "
        "MARITAL RACE ETHNICITY GENDER BIRTHPLACE ADDRESS CITY STATE COUNTY FIPS ZIP LAT LON "
        "HEALTHCARE_EXPENSES HEALTHCARE_COVERAGE INCOME"
    ),
    "payer_transitions": _cols(
        "PATIENT MEMBERID START_YEAR END_YEAR START_DATE END_DATE PAYER SECONDARY_PAYER "
        "OWNERSHIP PLAN_OWNERSHIP OWNER_NAME"
    ),
    "encounters": _cols(
        "ID START STOP PATIENT ORGANIZATION PROVIDER PAYER ENCOUNTERCLASS CODE DESCRIPTION "
        "BASE_ENCOUNTER_COST TOTAL_CLAIM_COST PAYER_COVERAGE REASONCODE REASONDESCRIPTION"
    ),
    "conditions": _cols("START STOP PATIENT ENCOUNTER SYSTEM CODE DESCRIPTION"),
    "medications": _cols(
        "START STOP PATIENT PAYER ENCOUNTER CODE DESCRIPTION BASE_COST PAYER_COVERAGE "
        "DISPENSES TOTALCOST REASONCODE REASONDESCRIPTION"
    ),
    "procedures": _cols(
        "DATE START STOP PATIENT ENCOUNTER SYSTEM CODE DESCRIPTION BASE_COST REASONCODE "
        "REASONDESCRIPTION"
    ),
    "immunizations": _cols("DATE PATIENT ENCOUNTER CODE DESCRIPTION BASE_COST"),
    "allergies": _cols(
        "START STOP PATIENT ENCOUNTER CODE SYSTEM DESCRIPTION TYPE CATEGORY REACTION1 "
        "DESCRIPTION1 SEVERITY1 REACTION2 DESCRIPTION2 SEVERITY2"
    ),
    "careplans": _cols(
        "ID START STOP PATIENT ENCOUNTER CODE DESCRIPTION REASONCODE REASONDESCRIPTION"
    ),
    "observations": _cols("DATE PATIENT ENCOUNTER CATEGORY CODE DESCRIPTION VALUE UNITS TYPE"),
    "claims": _cols(
        "ID PATIENTID PROVIDERID PRIMARYPATIENTINSURANCEID SECONDARYPATIENTINSURANCEID "
        "DEPARTMENTID PATIENTDEPARTMENTID DIAGNOSIS1 DIAGNOSIS2 DIAGNOSIS3 DIAGNOSIS4 DIAGNOSIS5 "
        "DIAGNOSIS6 DIAGNOSIS7 DIAGNOSIS8 REFERRINGPROVIDERID APPOINTMENTID CURRENTILLNESSDATE "
        "SERVICEDATE SUPERVISINGPROVIDERID STATUS1 STATUS2 STATUSP OUTSTANDING1 OUTSTANDING2 "
        "OUTSTANDINGP LASTBILLEDDATE1 LASTBILLEDDATE2 LASTBILLEDDATEP HEALTHCARECLAIMTYPEID1 "
        "HEALTHCARECLAIMTYPEID2"
    ),
    "claims_transactions": _cols(
        "ID CLAIMID CHARGEID PATIENTID TYPE AMOUNT METHOD FROMDATE TODATE PLACEOFSERVICE "
        "PROCEDURECODE MODIFIER1 MODIFIER2 DIAGNOSISREF1 DIAGNOSISREF2 DIAGNOSISREF3 "
        "DIAGNOSISREF4 UNITS DEPARTMENTID NOTES UNITAMOUNT TRANSFEROUTID TRANSFERTYPE PAYMENTS "
        "ADJUSTMENTS TRANSFERS OUTSTANDING APPOINTMENTID LINENOTE PATIENTINSURANCEID "
        "FEESCHEDULEID PROVIDERID SUPERVISINGPROVIDERID"
    ),
}
# Known files CIMS has no table for (devices, supplies, imaging): read, reported, not loaded.
UNMAPPED: Final = ("devices", "supplies", "imaging_studies")
# Load order: referenced rows first.
ORDER: Final = tuple(KNOWN)


@dataclass
class StagedFile:
    """One CSV file copied into a TEMP staging table."""

    stem: str
    table: str
    rows: int
    header: list[str]
    unknown_columns: list[str] = field(default_factory=list)


def detect_layout(folder: Path) -> str:
    """``synthea-3.x`` for the newest layout (procedures START, claims), else ``synthea-2.x``."""
    header = read_header(folder / "procedures.csv")
    if "START" in header or (folder / "claims.csv").exists():
        return "synthea-3.x"
    return "synthea-2.x"


def read_header(path: Path) -> list[str]:
    """The upper-cased header of a CSV file ([] when absent or empty)."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        first = next(csv.reader(handle), [])
    return [name.strip().upper() for name in first]


def count_rows(path: Path) -> int:
    """Data rows of a CSV file (for progress), counted without parsing."""
    with path.open("rb") as handle:
        return max(
            sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")) - 1, 0
        )


def _source_key(stem: str, has_id: bool, row: list[str], seen: Counter[str]) -> str:
    if has_id:
        return row[0]
    # No Id column: the row's content is its identity; repeats of one row are numbered.
    digest = hashlib.blake2b("\x1f".join(row).encode(), digest_size=16).hexdigest()
    seen[digest] += 1
    return f"{digest}:{seen[digest]}"


def stage_file(
    cursor: Any, folder: Path, stem: str, *, replicas: int = 1, progress: Any = None
) -> StagedFile | None:
    """COPY one file into TEMP table ``stg_<stem>`` (line, src, known columns as text)."""
    path = folder / f"{stem}.csv"
    if not path.exists():
        return None
    known = KNOWN[stem]
    table = f"stg_{stem}"
    cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    columns = sql.SQL(", ").join(
        sql.SQL("{} text").format(sql.Identifier(name.lower())) for name in known
    )
    cursor.execute(
        sql.SQL(
            "CREATE TEMP TABLE {} (line int, src text, {}, reject text, skip bool DEFAULT false)"
        ).format(sql.Identifier(table), columns)
    )
    rows = 0
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip().upper() for name in next(reader, [])]
        positions = [header.index(name) if name in header else -1 for name in known]
        has_id = bool(header) and header[0] == "ID" and "ID" in known
        target = sql.SQL("COPY {} (line, src, {}) FROM STDIN").format(
            sql.Identifier(table),
            sql.SQL(", ").join(sql.Identifier(name.lower()) for name in known),
        )
        data = list(reader)
        with cursor.copy(target) as copy:
            for replica in range(replicas):
                seen: Counter[str] = Counter()
                for number, raw in enumerate(data, start=2):
                    if replica:
                        # Benchmark replicas: fresh ids, same content.
                        raw = [_replica_value(value, replica) for value in raw]
                    values = [(raw[p] or None) if 0 <= p < len(raw) else None for p in positions]
                    copy.write_row([number, _source_key(stem, has_id, raw, seen), *values])
                    rows += 1
                if progress is not None:
                    progress(stem, rows)
    cursor.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    unknown = [name for name in header if name not in known]
    return StagedFile(stem=stem, table=table, rows=rows, header=header, unknown_columns=unknown)


def _replica_value(value: str, replica: int) -> str:
    """Give a UUID-shaped id a replica-specific prefix; other values stay as they are."""
    if len(value) == 36 and value.count("-") == 4:
        return f"{replica:08x}{value[8:]}"
    return value
