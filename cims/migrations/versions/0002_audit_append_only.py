"""audit trail append-only: triggers, and INSERT/SELECT-only grants for cims_app

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 09:00:00

Triggers reject UPDATE and DELETE (per row) and TRUNCATE (per statement) on audit_log
and audit_seals for every role, the owner included. The application is meant to
connect as a member of the NOLOGIN role ``cims_app`` (not as the tables' owner), which
may only SELECT and INSERT these two tables. See docs/audit.md.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION cims_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit table % is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Audit rows are never changed or removed; record a new row instead.';
END;
$$
"""

# Roles are cluster-wide: create cims_app once, tolerate a concurrent creator (parallel
# test databases) and a migrating role that may not create roles (then only warn).
APP_ROLE_GRANTS = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cims_app') THEN
        IF EXISTS (SELECT 1 FROM pg_roles
                   WHERE rolname = current_user AND (rolsuper OR rolcreaterole)) THEN
            BEGIN
                CREATE ROLE cims_app NOLOGIN;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        ELSE
            RAISE WARNING 'role cims_app is missing and % may not create it', current_user
                USING HINT = 'Create it, then GRANT SELECT, INSERT ON audit_log, audit_seals.';
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cims_app') THEN
        REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, audit_seals FROM cims_app;
        GRANT SELECT, INSERT ON audit_log, audit_seals TO cims_app;
    END IF;
END;
$$
"""


def upgrade() -> None:
    """Apply this revision."""
    op.execute(APPEND_ONLY_FUNCTION)
    # Written out per table: a migration is read more often than it is edited.
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION cims_audit_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION cims_audit_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_seals_append_only BEFORE UPDATE OR DELETE ON audit_seals "
        "FOR EACH ROW EXECUTE FUNCTION cims_audit_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON audit_seals "
        "FOR EACH STATEMENT EXECUTE FUNCTION cims_audit_append_only()"
    )
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, audit_seals FROM PUBLIC")
    op.execute(APP_ROLE_GRANTS)


def downgrade() -> None:
    """Revert this revision (the cluster-wide role cims_app is kept)."""
    op.execute(
        "DO $$ BEGIN "
        "IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cims_app') THEN "
        "REVOKE ALL ON audit_log, audit_seals FROM cims_app; "
        "END IF; END; $$"
    )
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
    op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
    op.execute("DROP TRIGGER IF EXISTS audit_seals_no_truncate ON audit_seals")
    op.execute("DROP TRIGGER IF EXISTS audit_seals_append_only ON audit_seals")
    op.execute("DROP FUNCTION IF EXISTS cims_audit_append_only()")
