"""What the analytics snapshot copies: the source queries and how each becomes a table.

Only the columns analytics need leave PostgreSQL, as cheap binary types; every direct
identifier stays behind, and row ids live only in the in-memory ``stage`` database
while a refresh runs (see analytics.snapshot).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Final

# Age bands (lower bounds); a band is "lo-hi" or "80+".
AGE_BANDS: Final = (0, 18, 35, 50, 65, 80)


def _age_band_sql() -> str:
    cases = []
    for low, high in itertools.pairwise(AGE_BANDS):
        cases.append(f"WHEN age < {high} THEN '{low}-{high - 1}'")
    return f"CASE WHEN age IS NULL THEN 'unknown' {' '.join(cases)} ELSE '{AGE_BANDS[-1]}+' END"


# Source queries: only the columns analytics need, as cheap binary types. Times become
# hospital-local ({zone}); money travels as integer cents (exact, and no text to parse);
# codes of small tables are joined in DuckDB. Literals, not bind parameters: ADBC streams
# a parameterless query through binary COPY, half the client work of a bound one.
@dataclass(frozen=True)
class Source:
    """One snapshot table's rows in PostgreSQL.

    ``table`` is the FROM clause (``alias`` prefixes its own columns when it joins), ``keep``
    the rows the snapshot holds. An incremental source's rows carry ``row_xid`` (migration
    0008) and a refresh reads only the rows written since the last one (``changed_ids_sql``
    then ``rows_sql``);
    the others are read whole every time (patients, for their age bands; small tables).
    """

    columns: str
    table: str
    keep: str = "TRUE"
    alias: str = ""
    incremental: bool = True
    # The column of the visit a row belongs to (its department and type come from it).
    encounter: str | None = None
    # The table the rows come from, when ``table`` does not start with it.
    base: str = ""

    @property
    def name(self) -> str:
        """The PostgreSQL table the rows come from."""
        return self.base or self.table.split()[0]

    def full_sql(self) -> str:
        """Every kept row; ``{part}`` takes a physical (ctid) range of a split table."""
        select = f"SELECT {self.alias}id AS id, {self.columns} FROM {self.table}"
        return f"{select} WHERE {self.keep}{{part}}"

    def changed_ids_sql(self, since: str, visits: str, patients: str) -> str:
        """Ids of the rows written since snapshot ``since``, of the visits ``visits`` and of
        the patients ``patients`` (SQL int8 array literals): a UNION of index scans."""
        base, a = self.name, self.alias
        arms = [
            f"SELECT id FROM {base} WHERE row_xid >= pg_snapshot_xmin({since})::text::int8 "
            f"AND NOT pg_visible_in_snapshot(row_xid::text::xid8, {since})",
            f"SELECT id FROM {base} WHERE patient_id = ANY({patients})",
        ]
        if self.encounter:
            arms.append(f"SELECT {a}id FROM {self.table} WHERE {self.encounter} = ANY({visits})")
        return " UNION ".join(arms)

    def rows_sql(self, ids: str) -> str:
        """The rows ``ids`` (an int8 array literal), kept or not (``keep`` says). Read by a
        literal list, the planner knows how few they are and reads them by index."""
        return (
            f"SELECT {self.alias}id AS id, ({self.keep}) AS keep, {self.columns} "
            f"FROM {self.table} WHERE {self.alias}id = ANY({ids})"
        )


SOURCES: Final[dict[str, Source]] = {
    "patients": Source(
        "sex, insurance_type, date_part('year', age({today}, birth_date))::int AS age, "
        "date_trunc('month', registered_at AT TIME ZONE {zone})::date AS registered_month",
        "patients",
        keep="NOT voided AND merged_into_id IS NULL",
        incremental=False,
    ),
    "departments": Source("code, name_zh, name_en, kind", "departments", incremental=False),
    "visits": Source(
        "patient_id, encounter_type, department_id, attending_id AS doctor_id, "
        "started_at AT TIME ZONE {zone} AS started_at, ended_at AT TIME ZONE {zone} AS ended_at, "
        "disposition, status, appointment_id IS NOT NULL AS booked",
        "encounters",
        keep="NOT voided",
        encounter="id",
    ),
    "appointments": Source(
        "patient_id, department_id, doctor_id, status, channel, "
        "booked_at AT TIME ZONE {zone} AS booked_at, "
        "scheduled_at AT TIME ZONE {zone} AS scheduled_at, "
        "checked_in_at AT TIME ZONE {zone} AS checked_in_at, "
        "seen_at AT TIME ZONE {zone} AS seen_at, "
        "cancelled_at AT TIME ZONE {zone} AS cancelled_at",
        "appointments",
    ),
    "diagnoses": Source(
        "encounter_id, patient_id, code, description, rank, "
        "diagnosed_at AT TIME ZONE {zone} AS diagnosed_at",
        "diagnoses",
        keep="NOT voided",
        encounter="encounter_id",
    ),
    # Shares add up (a CHECK constraint): the patient's share is amount - insurance.
    "charges": Source(
        "encounter_id, patient_id, price_item_id, source_type, service_date, "
        "(amount * 100)::int8 AS amount, (insurance_amount * 100)::int8 AS insurance_amount",
        "charges",
        keep="NOT voided",
        encounter="encounter_id",
    ),
    "invoices": Source(
        "encounter_id, patient_id, status, issued_at AT TIME ZONE {zone} AS issued_at, "
        "due_date, (total_amount * 100)::int8 AS total_amount, "
        "(patient_amount * 100)::int8 AS patient_amount, "
        "(paid_amount * 100)::int8 AS paid_amount",
        "invoices",
        keep="NOT voided AND status <> 'void'",
        encounter="encounter_id",
    ),
    "payments": Source(
        "i.encounter_id, p.patient_id, p.method, p.status, "
        "(p.amount * 100)::int8 AS amount, (p.refunded_amount * 100)::int8 AS refunded_amount, "
        "p.received_at AT TIME ZONE {zone} AS received_at",
        "payments p JOIN invoices i ON i.id = p.invoice_id",
        alias="p.",
        encounter="i.encounter_id",
    ),
    "surveys": Source(
        "encounter_id, patient_id, department_id, "
        "sent_at AT TIME ZONE {zone} AS sent_at, completed_at AT TIME ZONE {zone} AS completed_at, "
        "rating_waiting, rating_doctor, rating_environment, rating_billing, recommend",
        "surveys",
        encounter="encounter_id",
    ),
    # Each subject's newest score per model, with the department of the discharge or
    # booking; read whole (a subject's newest score replaces its older one).
    "risk_scores": Source(
        "r.patient_id, r.model_name, coalesce(e.department_id, a.department_id) AS department_id, "
        "r.score::float8 AS score, r.scored_at AT TIME ZONE {zone} AS scored_at",
        "(SELECT DISTINCT ON (s.subject_type, s.subject_id, v.model_name) s.*, v.model_name "
        "FROM risk_scores s JOIN model_versions v ON v.id = s.model_version_id "
        "ORDER BY s.subject_type, s.subject_id, v.model_name, s.scored_at DESC) r "
        "LEFT JOIN encounters e ON r.subject_type = 'encounter' AND e.id = r.subject_id "
        "LEFT JOIN appointments a ON r.subject_type = 'appointment' AND a.id = r.subject_id",
        alias="r.",
        incremental=False,
        base="risk_scores",
    ),
}
# Small lookups used while building; never written to the snapshot.
LOOKUPS: Final[dict[str, str]] = {
    "price_items": "SELECT id, category FROM price_items",
    "users": "SELECT id FROM users",
}
# Maps first (every table needs patients, most need visits), then the biggest first.
FETCH_ORDER: Final = (
    "departments",
    "patients",
    "visits",
    "charges",
    "diagnoses",
    "appointments",
    "invoices",
    "payments",
    "surveys",
    "risk_scores",
)
# Tables fetched in two physical halves on two connections (the biggest one).
SPLIT: Final = frozenset({"charges"})


def _cents_sql(expression: str) -> str:
    """Integer cents back to exact money (a DECIMAL product, never a float)."""
    return f"CAST(CAST({expression} AS DECIMAL(18, 0)) * 0.01 AS DECIMAL(12, 2))"


def _cents(*columns: str) -> str:
    return ", ".join(f"{_cents_sql('s.' + c)} AS {c}" for c in columns)


_PATIENT: Final = "JOIN stage.pmap m ON m.id = s.patient_id"
_VISIT: Final = "LEFT JOIN stage.vmap v ON v.id = s.encounter_id"
_DEPARTMENT: Final = "LEFT JOIN stage.departments dep ON dep.id = s.department_id"
_DOCTOR: Final = "LEFT JOIN stage.dmap d ON d.id = s.doctor_id"

# How each staged source becomes a snapshot table (ids swapped for keys, money cast).
# ``patient_no`` is a per-snapshot integer standing for ``patient_key``: distinct-patient
# counts on integers are several times faster than on the 16-character keys.
BUILDS: Final[dict[str, str]] = {
    "patients": (
        f"SELECT m.patient_key, s.sex, s.insurance_type, {_age_band_sql()} AS age_band, "
        "s.registered_month FROM src s JOIN stage.pmap m USING (id)"
    ),
    "departments": "SELECT code, name_zh, name_en, kind FROM stage.departments",
    # From the staged, numbered visits (already in visit_key order: the start time).
    "visits": (
        "SELECT s.visit_key, m.patient_key, s.encounter_type, s.department_code, "
        "d.doctor_key, s.started_at, s.ended_at, s.disposition, s.status, s.booked, "
        f"m.patient_no FROM staged_visits s {_PATIENT} {_DOCTOR}"
    ),
    "appointments": (
        "SELECT m.patient_key, dep.code AS department_code, d.doctor_key, s.status, s.channel, "
        "s.booked_at, s.scheduled_at, s.checked_in_at, s.seen_at, s.cancelled_at, m.patient_no, "
        "s.row_no "
        f"FROM src s {_PATIENT} {_DEPARTMENT} {_DOCTOR}"
    ),
    "diagnoses": (
        "SELECT v.visit_key, m.patient_key, v.department_code, v.encounter_type, s.code, "
        "s.description, s.rank, s.diagnosed_at, m.patient_no, s.row_no "
        f"FROM src s {_PATIENT} {_VISIT}"
    ),
    "charges": (
        "SELECT v.visit_key, m.patient_key, v.department_code, v.encounter_type, "
        "m.insurance_type, pi.category, s.source_type, s.service_date, "
        f"{_cents('amount', 'insurance_amount')}, "
        f"{_cents_sql('s.amount - s.insurance_amount')} AS patient_amount, m.patient_no, s.row_no "
        f"FROM src s {_PATIENT} {_VISIT} "
        "LEFT JOIN stage.price_items pi ON pi.id = s.price_item_id"
    ),
    "invoices": (
        "SELECT v.visit_key, m.patient_key, v.department_code, v.encounter_type, s.status, "
        f"s.issued_at, s.due_date, {_cents('total_amount', 'patient_amount', 'paid_amount')}, "
        f"m.patient_no, s.row_no FROM src s {_PATIENT} {_VISIT}"
    ),
    "payments": (
        "SELECT m.patient_key, v.department_code, v.encounter_type, s.method, s.status, "
        f"{_cents('amount', 'refunded_amount')}, s.received_at, m.patient_no, s.row_no "
        f"FROM src s {_PATIENT} {_VISIT}"
    ),
    "surveys": (
        "SELECT m.patient_key, coalesce(dep.code, v.department_code) AS department_code, "
        "v.encounter_type, s.sent_at, s.completed_at, s.rating_waiting, s.rating_doctor, "
        "s.rating_environment, s.rating_billing, s.recommend, m.patient_no, s.row_no "
        f"FROM src s {_PATIENT} {_VISIT} {_DEPARTMENT}"
    ),
    "risk_scores": (
        "SELECT m.patient_key, s.model_name, dep.code AS department_code, s.score, "
        f"s.scored_at, m.patient_no FROM src s {_PATIENT} {_DEPARTMENT}"
    ),
}
# Each table's date column for the partitioned Parquet export (by year).
PARTITION_DATES: Final[dict[str, str]] = {
    "visits": "started_at",
    "appointments": "scheduled_at",
    "diagnoses": "diagnosed_at",
    "charges": "service_date",
    "invoices": "issued_at",
    "payments": "received_at",
    "surveys": "sent_at",
    "risk_scores": "scored_at",
}
# The private maps of a refresh, in the state file (``stage``) beside the snapshot: they
# hold source row ids, which never reach the snapshot file (not even its free blocks).
# Patients and visits keep their numbers from refresh to refresh; newcomers get the next.
MAPS: Final[dict[str, str]] = {
    "pmap": (
        "SELECT id, {patient} AS patient_key, insurance_type, "
        "CAST(row_number() OVER (ORDER BY {patient}) AS INTEGER) AS patient_no FROM src"
    ),
    "dmap": "SELECT id, {doctor} AS doctor_key FROM stage.users",
    # Numbered by start time; the rows stay in that order, so the visits table is sorted
    # by date and a period's queries skip the rest of it (DuckDB's min/max zone maps).
    "visits": (
        "SELECT s.*, {first} + row_number() OVER (ORDER BY s.started_at, s.id) AS visit_key, "
        "dep.code AS department_code FROM src s "
        "LEFT JOIN stage.departments dep ON dep.id = s.department_id ORDER BY visit_key"
    ),
    "vmap": "SELECT id, visit_key, department_code, encounter_type, patient_id FROM staged_visits",
}
