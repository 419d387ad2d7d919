"""lab results from outside laboratories: result status, range text, corrections

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add observations.result_status, ref_text and corrects_id (a correction's target)."""
    op.add_column("observations", sa.Column("result_status", sa.Text(), nullable=True))
    op.add_column("observations", sa.Column("ref_text", sa.Text(), nullable=True))
    op.add_column("observations", sa.Column("corrects_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_observations_corrects_id_observations"),
        "observations",
        "observations",
        ["corrects_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    op.create_index(
        op.f("ix_observations_corrects_id"), "observations", ["corrects_id"], unique=False
    )


def downgrade() -> None:
    """Drop the three columns again."""
    op.drop_index(op.f("ix_observations_corrects_id"), table_name="observations")
    op.drop_constraint(
        op.f("fk_observations_corrects_id_observations"), "observations", type_="foreignkey"
    )
    op.drop_column("observations", "corrects_id")
    op.drop_column("observations", "ref_text")
    op.drop_column("observations", "result_status")
