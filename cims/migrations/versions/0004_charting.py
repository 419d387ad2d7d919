"""charting: signed notes with addenda, clinical code tables, allergy overrides

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Note signing and addenda, the clinical_codes table, prescription override reasons."""
    # Notes already in the record (imported or seeded) count as signed by their author.
    op.add_column(
        "clinical_notes",
        sa.Column("status", sa.Text(), server_default="signed", nullable=False),
    )
    op.add_column(
        "clinical_notes", sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("clinical_notes", sa.Column("signed_by_id", sa.BigInteger(), nullable=True))
    op.add_column("clinical_notes", sa.Column("amends_id", sa.BigInteger(), nullable=True))
    op.add_column(
        "clinical_notes", sa.Column("is_soap", sa.Boolean(), server_default="false", nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_clinical_notes_status_valid"),
        "clinical_notes",
        "status IN ('draft', 'signed')",
    )
    op.create_foreign_key(
        op.f("fk_clinical_notes_signed_by_id_users"),
        "clinical_notes",
        "users",
        ["signed_by_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    op.create_foreign_key(
        op.f("fk_clinical_notes_amends_id_clinical_notes"),
        "clinical_notes",
        "clinical_notes",
        ["amends_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    op.create_index(op.f("ix_clinical_notes_amends_id"), "clinical_notes", ["amends_id"])
    op.add_column(
        "prescriptions", sa.Column("allergy_override_reason", sa.Text(), nullable=True)
    )
    op.create_table(
        "clinical_codes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("code_system", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("title_en", sa.Text(), nullable=True),
        sa.Column("title_zh", sa.Text(), nullable=True),
        sa.Column("parent_code", sa.Text(), nullable=True),
        sa.Column("is_leaf", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinical_codes")),
        sa.UniqueConstraint("code_system", "code", name=op.f("uq_clinical_codes_code_system")),
    )
    op.create_index(
        "ix_clinical_codes_code_prefix",
        "clinical_codes",
        ["code_system", sa.text("upper(code) text_pattern_ops")],
    )


def downgrade() -> None:
    """Drop what upgrade added."""
    op.drop_index("ix_clinical_codes_code_prefix", table_name="clinical_codes")
    op.drop_table("clinical_codes")
    op.drop_column("prescriptions", "allergy_override_reason")
    op.drop_index(op.f("ix_clinical_notes_amends_id"), table_name="clinical_notes")
    op.drop_constraint(
        op.f("fk_clinical_notes_amends_id_clinical_notes"), "clinical_notes", type_="foreignkey"
    )
    op.drop_constraint(
        op.f("fk_clinical_notes_signed_by_id_users"), "clinical_notes", type_="foreignkey"
    )
    op.drop_constraint(op.f("ck_clinical_notes_status_valid"), "clinical_notes", type_="check")
    for column in ("is_soap", "amends_id", "signed_by_id", "signed_at", "status"):
        op.drop_column("clinical_notes", column)
