"""Migrations build the whole schema from empty, match the models, and go back down."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from cims import migrate
from cims.schema import metadata


def test_upgrade_from_empty_creates_every_table(fresh_database: Callable[[str], str]) -> None:
    url = fresh_database("migrations")
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert set(metadata.tables) <= tables
        assert migrate.current_revision(url) == migrate.head_revision()
        with engine.connect() as conn:
            version = conn.scalar(text("SHOW server_version_num"))
        assert int(version) >= 150000
    finally:
        engine.dispose()


def test_models_and_migrations_agree(fresh_database: Callable[[str], str]) -> None:
    url = fresh_database("drift")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(fresh_database: Callable[[str], str]) -> None:
    url = fresh_database("roundtrip")
    migrate.downgrade(url, "base")
    engine = create_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(url)
        engine.dispose()
        assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrading_a_database_with_data_from_the_first_migration_keeps_it(
    fresh_database: Callable[[str], str],
) -> None:
    url = fresh_database("upgrade_data")
    migrate.downgrade(url, "0001")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO departments (code, name_zh, name_en, kind)"
                    " VALUES ('ENDO', '内分泌科', 'Endocrinology', 'clinical')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO patients (mrn, family_name, given_name, full_name, sex,"
                    " id_type, nationality, insurance_type, blood_type, is_unidentified,"
                    " registered_at) VALUES ('0000000018', '李', '雷', '李雷', 'M',"
                    " 'resident_id', 'CN', 'self_pay', 'unknown', false, now())"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO clinical_notes (patient_id, note_type, title, body_enc,"
                    " written_at) SELECT id, 'progress', 'Day 1', '\\x00'::bytea, now()"
                    " FROM patients"
                )
            )
        migrate.upgrade(url)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT full_name FROM patients")) == "李雷"
            # Notes written before signing existed count as signed.
            assert conn.scalar(text("SELECT status FROM clinical_notes")) == "signed"
        assert migrate.current_revision(url) == migrate.head_revision()
    finally:
        engine.dispose()


def test_migrate_check_reports_pending_migrations(fresh_database: Callable[[str], str]) -> None:
    import os
    import subprocess
    import sys

    from cims.config import PROJECT_ROOT

    url = fresh_database("migrate_check")

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cims", "migrate", "--check"],
            cwd=PROJECT_ROOT,
            env=dict(os.environ, CIMS_DATABASE_URL=url),
            capture_output=True,
            text=True,
            timeout=120,
        )

    current = check()
    assert current.returncode == 0 and current.stdout.startswith("up to date")
    migrate.downgrade(url, "0003")
    behind = check()
    assert behind.returncode == 1 and "pending: database at 0003" in behind.stdout
    assert migrate.current_revision(url) == "0003"  # --check changed nothing


def test_an_upgrade_of_a_database_with_patients_takes_a_backup_first(
    fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    from cims.config import PROJECT_ROOT
    from cims.ops.backup import SUFFIX

    url = fresh_database("upgrade_backup")
    migrate.downgrade(url, "0005")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO patients (mrn, family_name, given_name, full_name, sex,"
                    " id_type, nationality, insurance_type, blood_type, is_unidentified,"
                    " registered_at) VALUES ('0000000018', '李', '雷', '李雷', 'M',"
                    " 'resident_id', 'CN', 'self_pay', 'unknown', false, now())"
                )
            )
    finally:
        engine.dispose()
    done = subprocess.run(
        [sys.executable, "-m", "cims", "init-db"],
        cwd=PROJECT_ROOT,
        env=dict(os.environ, CIMS_DATABASE_URL=url, CIMS_BACKUP_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "backing up first" in done.stderr
    assert len(list(tmp_path.glob(f"*{SUFFIX}"))) == 1
    assert migrate.current_revision(url) == migrate.head_revision()
