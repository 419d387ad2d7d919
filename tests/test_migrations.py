"""Migrations build the whole schema from empty, match the models, and go back down."""

from __future__ import annotations

from collections.abc import Callable

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
