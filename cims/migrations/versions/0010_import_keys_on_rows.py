"""import keys on the rows: clinical rows keep their Synthea key, not a link row each

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27

Diagnoses, problems, prescriptions, procedures, allergies, treatment plans and observations
get ``source_system`` and ``source_id`` (as encounters have had since 0001). A Synthea import
writes the row's key there and finds earlier rows by patient, instead of writing one
``import_links`` row per imported row: those links were a third of a million-row import's
time. Encounters, which always kept their key, lose their link rows too: references to
them are looked up by patient. Links of patients, organizations, providers and claims stay
in ``import_links`` (few rows, and looked up by key alone).

Existing links of these tables move onto their rows (which rewrites those rows once), so an
export imported before the upgrade still adds nothing when imported again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Target table -> the Synthea files (link source tables) whose rows it holds.
KEYED: dict[str, tuple[str, ...]] = {
    "diagnoses": ("conditions",),
    "problems": ("conditions#problem",),
    "prescriptions": ("medications",),
    "procedures": ("procedures", "immunizations"),
    "allergies": ("allergies",),
    "treatment_plans": ("careplans",),
    "observations": ("observations",),
}

# Encounters always kept their key: only their links move.
MOVED: dict[str, tuple[str, ...]] = {**KEYED, "encounters": ("encounters",)}


def upgrade() -> None:
    """Add the columns, move the Synthea links of these tables onto their rows."""
    for table in KEYED:
        op.add_column(table, sa.Column("source_system", sa.Text(), nullable=True))
        op.add_column(table, sa.Column("source_id", sa.Text(), nullable=True))
    for table, sources in MOVED.items():
        op.execute(
            sa.text(
                f"UPDATE {table} t SET source_system = l.source_system, source_id = l.source_id"
                " FROM import_links l WHERE l.source_system = 'synthea'"
                " AND l.source_table = ANY(:sources) AND l.target_table = :table"
                " AND l.target_id = t.id"
            ).bindparams(sources=list(sources), table=table)
        )
        op.execute(
            sa.text(
                "DELETE FROM import_links WHERE source_system = 'synthea'"
                " AND source_table = ANY(:sources) AND target_table = :table"
            ).bindparams(sources=list(sources), table=table)
        )


def downgrade() -> None:
    """Move the keys back into import_links and drop the columns."""
    for table, sources in MOVED.items():
        # Immunizations are the procedures stored with code system CVX.
        source = (
            "CASE WHEN code_system = 'CVX' THEN 'immunizations' ELSE 'procedures' END"
            if table == "procedures"
            else f"'{sources[0]}'"
        )
        op.execute(
            sa.text(
                "INSERT INTO import_links (source_system, source_table, source_id,"
                f" target_table, target_id) SELECT source_system, {source}, source_id, :table, id"
                f" FROM {table} WHERE source_system = 'synthea' AND source_id IS NOT NULL"
            ).bindparams(table=table)
        )
        if table != "encounters":
            op.drop_column(table, "source_id")
            op.drop_column(table, "source_system")
