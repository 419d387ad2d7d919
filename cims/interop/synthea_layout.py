"""Synthea CSV layouts: the files and columns we know, layout detection, COPY into staging.

Synthea changed its CSV layout between versions (2.x: ``procedures.DATE``,
``payer_transitions.START_YEAR``; 3.x: ``procedures.START/STOP``, ``SYSTEM`` columns,
``claims*.csv``). Every staging table gets the union of the known columns of its file, so
the set-based SQL reads both layouts; a column the file lacks is simply NULL there.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psycopg
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
# A column an older layout names differently, staged under the newer name when the file has
# only the older one (2.x procedures have DATE where 3.x has START).
ALIASES: Final[dict[str, dict[str, str]]] = {"procedures": {"date": "start"}}
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


def _file_columns(header: list[str], known: tuple[str, ...]) -> list[str]:
    """SQL column names for the file's columns in file order (unknown ones numbered)."""
    names: list[str] = []
    for position, name in enumerate(header):
        column = name.lower() if name in known else f"unknown_{position}"
        names.append(column if column not in names else f"unknown_{position}")
    return names


def stage_file(cursor: Any, folder: Path, stem: str, kind: str = "TEMP") -> StagedFile | None:
    """Load one file into ``kind`` (TEMP or UNLOGGED) table ``stg_<stem>`` (line, src, text).

    The file goes to PostgreSQL as it is (``COPY ... FORMAT csv``), so PostgreSQL parses it
    straight into the staging table, whose line number and source key are computed on the
    way in; a file COPY cannot take (a ragged row, a stray quote) is read row by row in
    Python instead, where short rows are padded and long ones cut to the header's width.
    """
    path = folder / f"{stem}.csv"
    if not path.exists():
        return None
    known = KNOWN[stem]
    table = f"stg_{stem}"
    header = read_header(path)
    columns = _file_columns(header, known)
    for old, new in ALIASES.get(stem, {}).items():
        if old in columns and new not in columns:
            columns[columns.index(old)] = new
    has_id = bool(header) and header[0] == "ID" and "ID" in known
    cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    cursor.execute(_create_staging(table, columns, known, has_id=has_id, kind=kind))
    cursor.execute("SAVEPOINT cims_stage_copy")
    try:
        _copy_file(cursor, path, table, columns)
    except psycopg.errors.DataError:
        cursor.execute("ROLLBACK TO SAVEPOINT cims_stage_copy")
        # Sequences ignore rollbacks: line numbers must start again at the first data line.
        cursor.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN line RESTART WITH 2").format(sql.Identifier(table))
        )
        _copy_rows(cursor, path, table, columns)
    cursor.execute("RELEASE SAVEPOINT cims_stage_copy")
    if not has_id:
        # Identical rows in one file are numbered (``<digest>:2``, ...): only they are touched.
        cursor.execute(
            sql.SQL(
                "UPDATE {t} s SET repeat = d.seen FROM (SELECT line, row_number() OVER"
                " (PARTITION BY left(src, 32) ORDER BY line) AS seen FROM {t}"
                " WHERE left(src, 32) IN (SELECT left(src, 32) FROM {t} GROUP BY 1"
                " HAVING count(*) > 1)) d WHERE s.line = d.line AND d.seen > 1"
            ).format(t=sql.Identifier(table))
        )
    cursor.execute("SELECT count(*) FROM " + table)
    rows = int(cursor.fetchone()[0])
    # A small sample is enough for the joins that follow, and ten times cheaper to take.
    cursor.execute("SET LOCAL default_statistics_target = 10")
    cursor.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    cursor.execute("RESET default_statistics_target")
    unknown = [name for name in header if name not in known]
    return StagedFile(stem=stem, table=table, rows=rows, header=header, unknown_columns=unknown)


def _create_staging(
    table: str, columns: list[str], known: tuple[str, ...], *, has_id: bool, kind: str
) -> sql.Composed:
    """CREATE the staging table: file columns, missing known columns, line, key, verdict."""
    missing = [name.lower() for name in known if name.lower() not in columns]
    if has_id:
        src: sql.Composable = sql.Identifier(columns[0])
    else:
        # The row's content is its identity: md5 of its fields joined by U+001F.
        joined = sql.SQL(" || chr(31) || ").join(
            sql.SQL("coalesce({}, '')").format(sql.Identifier(c)) for c in columns
        )
        src = sql.SQL("md5({}) || ':' || repeat").format(joined)
    return sql.SQL(
        "CREATE {kind} TABLE {table} (line bigint GENERATED ALWAYS AS IDENTITY (START 2), {cols},"
        " repeat int NOT NULL DEFAULT 1, src text GENERATED ALWAYS AS ({src}) STORED)"
    ).format(
        kind=sql.SQL({"TEMP": "TEMP", "UNLOGGED": "UNLOGGED"}[kind]),
        table=sql.Identifier(table),
        cols=sql.SQL(", ").join(
            sql.SQL("{} text").format(sql.Identifier(c)) for c in [*columns, *missing]
        ),
        src=src,
    )


def _copy_file(cursor: Any, path: Path, table: str, columns: list[str]) -> None:
    """Stream the file to ``COPY FROM STDIN (FORMAT csv)``; empty fields become NULL."""
    names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true, FORCE_NULL ({}))")
    with (
        path.open("rb") as handle,
        cursor.copy(statement.format(sql.Identifier(table), names, names)) as copy,
    ):
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            copy.write(chunk)


def _copy_rows(cursor: Any, path: Path, table: str, columns: list[str]) -> None:
    """The careful path: parse in Python, pad or cut ragged rows to the header's width."""
    names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    width = len(columns)
    with (
        path.open(newline="", encoding="utf-8-sig") as handle,
        cursor.copy(
            sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), names)
        ) as copy,
    ):
        reader = csv.reader(handle)
        next(reader, None)
        for row in reader:
            padded = (row + [""] * width)[:width]
            copy.write_row([value or None for value in padded])
