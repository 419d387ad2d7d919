"""Alembic environment: migrates the database named by the CIMS settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from cims.db import database_url
from cims.schema import metadata

config = context.config


def run_migrations() -> None:
    """Run migrations online on a connection passed in, or on the configured database."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url") or database_url()
    engine = create_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
