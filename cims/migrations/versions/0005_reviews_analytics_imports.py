"""reasons for undo/stop/cancel, distinct-pair decisions, saved queries, import runs and links

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    """Add the columns and tables."""
    op.add_column("patient_merges", sa.Column("undo_reason", sa.Text(), nullable=True))
    op.add_column("prescriptions", sa.Column("stop_reason", sa.Text(), nullable=True))
    op.add_column("orders", sa.Column("cancel_reason", sa.Text(), nullable=True))
    op.create_table(
        "patient_distinct_pairs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("low_id", sa.BigInteger(), nullable=False),
        sa.Column("high_id", sa.BigInteger(), nullable=False),
        sa.Column("decided_by_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "decided_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint("low_id < high_id", name=op.f("ck_patient_distinct_pairs_ordered_pair")),
        sa.ForeignKeyConstraint(
            ["low_id"],
            ["patients.id"],
            name=op.f("fk_patient_distinct_pairs_low_id_patients"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["high_id"],
            ["patients.id"],
            name=op.f("fk_patient_distinct_pairs_high_id_patients"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["users.id"],
            name=op.f("fk_patient_distinct_pairs_decided_by_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_distinct_pairs")),
        sa.UniqueConstraint("low_id", "high_id", name=op.f("uq_patient_distinct_pairs_low_id")),
    )
    op.create_index(
        op.f("ix_patient_distinct_pairs_high_id"), "patient_distinct_pairs", ["high_id"]
    )
    op.create_table(
        "saved_queries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.Column("shared", sa.Boolean(), server_default="false", nullable=False),
        _now(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_saved_queries_owner_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_queries")),
        sa.UniqueConstraint("owner_id", "name", name=op.f("uq_saved_queries_owner_id")),
    )
    op.create_table(
        "import_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source_system", sa.Text(), nullable=False),
        sa.Column("source_label", sa.Text(), nullable=False),
        sa.Column("layout", sa.Text(), nullable=True),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("started_by_id", sa.BigInteger(), nullable=True),
        sa.Column("counts", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("rejected", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("unknown", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed')", name=op.f("ck_import_runs_status_valid")
        ),
        sa.ForeignKeyConstraint(
            ["started_by_id"],
            ["users.id"],
            name=op.f("fk_import_runs_started_by_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_runs")),
    )
    op.create_table(
        "import_links",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source_system", sa.Text(), nullable=False),
        sa.Column("source_table", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("target_table", sa.Text(), nullable=False),
        sa.Column("target_id", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["import_runs.id"],
            name=op.f("fk_import_links_run_id_import_runs"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_links")),
        sa.UniqueConstraint(
            "source_system",
            "source_table",
            "source_id",
            name=op.f("uq_import_links_source_system"),
        ),
    )
    op.create_index("ix_import_links_target", "import_links", ["target_table", "target_id"])
    op.create_index(op.f("ix_import_links_run_id"), "import_links", ["run_id"])


def downgrade() -> None:
    """Drop what upgrade added."""
    op.drop_table("import_links")
    op.drop_table("import_runs")
    op.drop_table("saved_queries")
    op.drop_table("patient_distinct_pairs")
    op.drop_column("orders", "cancel_reason")
    op.drop_column("prescriptions", "stop_reason")
    op.drop_column("patient_merges", "undo_reason")
