"""Declarative base and the metadata every clinical and financial row carries."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    LargeBinary,
    MetaData,
    Numeric,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(12, 2)


class Base(DeclarativeBase):
    """Root of every table; Python types map to PostgreSQL types here once."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        str: Text(),
        dt.datetime: DateTime(timezone=True),
        dt.date: Date(),
        Decimal: Money,
        bytes: LargeBinary(),
        dict[str, Any]: JSONB(),
        list[Any]: JSONB(),
        bool: Boolean(),
    }


def pk() -> Mapped[int]:
    """Bigint identity primary key; by default so bulk loads may supply ids."""
    return mapped_column(BigInteger, Identity(always=False), primary_key=True)


def fk(
    target: str, *, nullable: bool = True, index: bool = False, unique: bool = False
) -> Mapped[Any]:
    """Bigint foreign key column (restrictive on delete: rows are voided, not deleted)."""
    return mapped_column(
        BigInteger,
        ForeignKey(target, ondelete="RESTRICT"),
        nullable=nullable,
        index=index,
        unique=unique,
    )


def one_of(column: str, values: tuple[str, ...], name: str | None = None) -> CheckConstraint:
    """CHECK constraint limiting a text column to a fixed vocabulary."""
    listed = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name or f"{column}_valid")


def utcnow() -> dt.datetime:
    """Timezone-aware now in UTC (storage is always UTC)."""
    return dt.datetime.now(dt.UTC)


class Tracked:
    """Who created and last changed a row, and when (OpenMRS-style metadata)."""

    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[dt.datetime | None] = mapped_column(onupdate=func.now())

    @declared_attr
    def created_by_id(cls) -> Mapped[int | None]:  # noqa: N805
        return fk("users.id")

    @declared_attr
    def updated_by_id(cls) -> Mapped[int | None]:  # noqa: N805
        return fk("users.id")


class Voidable(Tracked):
    """Clinical and financial rows are voided with a reason, never deleted."""

    voided: Mapped[bool] = mapped_column(default=False, server_default="false")
    voided_at: Mapped[dt.datetime | None]
    void_reason: Mapped[str | None]

    @declared_attr
    def voided_by_id(cls) -> Mapped[int | None]:  # noqa: N805
        return fk("users.id")


class Imported:
    """Where a bulk-imported row came from (both NULL for rows made in CIMS).

    The importer finds rows it brought in before by these, scoped to one patient (every
    imported table is indexed by patient), so a repeated import adds nothing without a
    link row per imported row.
    """

    source_system: Mapped[str | None]  # e.g. synthea
    source_id: Mapped[str | None]  # the row's key in that system


def void_check() -> CheckConstraint:
    """A voided row must say when and why (add to every Voidable table's args)."""
    return CheckConstraint(
        "NOT voided OR (voided_at IS NOT NULL AND void_reason IS NOT NULL)",
        name="void_has_reason",
    )
