"""Database engine (embedded PostgreSQL by default, any PostgreSQL 15+ by URL) and sessions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from cims import text_guard
from cims.config import Settings, get_settings

APP_DATABASE = "cims"
text_guard.install()  # NUL characters become a translated refusal, never a DataError


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver whatever PostgreSQL URL spelling was given."""
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def database_url(settings: Settings | None = None) -> str:
    """The URL of the CIMS database named by the settings (embedded server when unset)."""
    settings = settings or get_settings()
    if settings.database_url:
        return normalise_url(settings.database_url)
    from cims.embedded import embedded_url

    return embedded_url(settings.pgdata_dir, APP_DATABASE)


def ensure_database(url: str) -> None:
    """Create the database named in ``url`` if the server does not have it yet."""
    target = make_url(url)
    name = target.database
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not exists:
                # Identifiers cannot be bound parameters; the name is quoted by the dialect.
                quoted = admin.dialect.identifier_preparer.quote(str(name))
                conn.execute(text("CREATE DATABASE " + quoted))
    finally:
        admin.dispose()


def recreate_database(url: str) -> None:
    """Drop the database named in ``url`` (ending its connections) and create it empty."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            quoted = admin.dialect.identifier_preparer.quote(str(target.database))
            conn.execute(text("DROP DATABASE IF EXISTS " + quoted + " WITH (FORCE)"))
    finally:
        admin.dispose()
    ensure_database(url)


def make_engine(url: str) -> Engine:
    """An engine with a small pool and UTC sessions."""
    return create_engine(
        url,
        pool_size=5,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"options": "-c timezone=UTC"},
    )


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    return make_engine(database_url())


@lru_cache(maxsize=1)
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction per user action: commit on success, roll back on any error."""
    session = _session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def reset_engine() -> None:
    """Forget the cached settings and engine (after the configuration changed, in tests)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    _session_factory.cache_clear()
    get_settings.cache_clear()
