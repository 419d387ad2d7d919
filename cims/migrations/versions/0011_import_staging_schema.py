"""import staging schema: where a Synthea import's second connection checks files

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27

A Synthea import checks the next files on a second connection while its own transaction
writes the previous ones (``cims/interop/synthea_stager.py``). That connection's work tables
must be visible to the import's transaction, so they are UNLOGGED tables here instead of
TEMP ones. They live only while an import runs; backups leave their data out.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the schema."""
    op.execute("CREATE SCHEMA IF NOT EXISTS import_staging")


def downgrade() -> None:
    """Drop it with whatever a killed import left there."""
    op.execute("DROP SCHEMA IF EXISTS import_staging CASCADE")
