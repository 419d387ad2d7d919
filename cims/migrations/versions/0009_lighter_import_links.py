"""lighter import links: drop the by-target and by-run indexes nothing reads

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26

``import_links`` gets one row per imported row (1.17 M for a million-row Synthea export), and
each index is paid on every one of them: dropping these two took a 1.17 M-row import from
28.9 s to 24.3 s. Imports look links up by source key only (the unique constraint stays).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Drop ix_import_links_target and ix_import_links_run_id."""
    op.drop_index("ix_import_links_target", table_name="import_links")
    op.drop_index(op.f("ix_import_links_run_id"), table_name="import_links")


def downgrade() -> None:
    """Create them again."""
    op.create_index(op.f("ix_import_links_run_id"), "import_links", ["run_id"])
    op.create_index("ix_import_links_target", "import_links", ["target_table", "target_id"])
