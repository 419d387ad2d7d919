"""row change stamps: the transaction that last wrote each row, for incremental analytics

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26

Every table the analytics snapshot copies row by row gets ``row_xid``: the id of the
transaction that inserted or last updated the row (a column default on insert, a trigger
on update, which fires in every replication role). A refresh then reads only the rows whose
writer its last PostgreSQL snapshot could not see. Existing rows keep NULL (the first
refresh after this migration copies everything), so adding the column rewrites nothing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from cims.schema import CHANGE_STAMPED

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAMP = "(pg_current_xact_id())::text::bigint"


def upgrade() -> None:
    """Add row_xid, its default, its update trigger and a partial index per table."""
    op.execute(
        "CREATE FUNCTION cims_stamp_row_xid() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN NEW.row_xid := {STAMP}; RETURN NEW; END $$"
    )
    for table in CHANGE_STAMPED:
        op.add_column(table, sa.Column("row_xid", sa.BigInteger(), nullable=True))
        # Set apart from ADD COLUMN: a volatile default there would rewrite every row.
        op.execute(f"ALTER TABLE {table} ALTER COLUMN row_xid SET DEFAULT {STAMP}")
        op.execute(
            f"CREATE TRIGGER {table}_row_xid BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION cims_stamp_row_xid()"
        )
        op.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_row_xid")
        op.create_index(
            f"ix_{table}_row_xid",
            table,
            ["row_xid"],
            postgresql_where=sa.text("row_xid IS NOT NULL"),
        )


def downgrade() -> None:
    """Drop the stamps again."""
    for table in CHANGE_STAMPED:
        op.drop_index(f"ix_{table}_row_xid", table_name=table)
        op.execute(f"DROP TRIGGER {table}_row_xid ON {table}")
        op.drop_column(table, "row_xid")
    op.execute("DROP FUNCTION cims_stamp_row_xid()")
