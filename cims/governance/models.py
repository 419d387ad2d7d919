"""Governance: backups registry, scheduled job runs, risk-model registry and scores."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Index, Numeric, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from cims.base import Base, fk, one_of, pk


class Backup(Base):
    """One encrypted backup: manifest, checksum and the result of its restore check."""

    __tablename__ = "backups"
    __table_args__ = (
        one_of("status", ("running", "succeeded", "failed")),
        one_of("verify_status", ("pending", "passed", "failed")),
    )

    id: Mapped[int] = pk()
    started_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(default="running")
    trigger: Mapped[str] = mapped_column(default="manual")  # manual | schedule
    triggered_by_id: Mapped[int | None] = fk("users.id")
    path: Mapped[str | None]
    size_bytes: Mapped[int | None]
    sha256: Mapped[str | None]
    server_version: Mapped[str | None]
    schema_revision: Mapped[str | None]
    manifest: Mapped[dict[str, Any] | None]
    verify_status: Mapped[str] = mapped_column(default="pending")
    verified_at: Mapped[dt.datetime | None]
    error: Mapped[str | None]


class JobRun(Base):
    """A run of a scheduled job (backup, reminders, snapshot); one per slot cluster-wide."""

    __tablename__ = "job_runs"
    __table_args__ = (
        UniqueConstraint("job", "scheduled_for"),
        one_of("status", ("running", "succeeded", "failed")),
    )

    id: Mapped[int] = pk()
    job: Mapped[str]
    scheduled_for: Mapped[dt.datetime]
    started_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(default="running")
    detail: Mapped[dict[str, Any] | None]


class ModelVersion(Base):
    """A registered risk-model version with its training window, features and metrics."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_name", "version"),
        one_of("status", ("candidate", "active", "retired")),
        Index(
            "uq_model_versions_one_active",
            "model_name",
            unique=True,
            postgresql_where="status = 'active'",
        ),
    )

    id: Mapped[int] = pk()
    model_name: Mapped[str]  # readmission_30d | no_show
    version: Mapped[int]
    status: Mapped[str] = mapped_column(default="candidate")
    trained_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    trained_by_id: Mapped[int | None] = fk("users.id")
    train_window_start: Mapped[dt.date | None]
    train_window_end: Mapped[dt.date | None]
    n_train: Mapped[int | None]
    n_validation: Mapped[int | None]
    features: Mapped[list[Any]]
    metrics: Mapped[dict[str, Any]]
    artifact_path: Mapped[str | None]
    artifact_sha256: Mapped[str | None]
    promoted_at: Mapped[dt.datetime | None]
    promoted_by_id: Mapped[int | None] = fk("users.id")


class RiskScore(Base):
    """A model's score for one subject (discharge or appointment) with its reasons."""

    __tablename__ = "risk_scores"
    __table_args__ = (
        Index("ix_risk_scores_patient_time", "patient_id", "scored_at"),
        Index("ix_risk_scores_subject", "subject_type", "subject_id"),
    )

    id: Mapped[int] = pk()
    model_version_id: Mapped[int] = fk("model_versions.id", nullable=False)
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    subject_type: Mapped[str]  # encounter | appointment
    subject_id: Mapped[int]
    score: Mapped[Decimal] = mapped_column(Numeric(6, 5))
    factors: Mapped[list[Any]]
    scored_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class SavedQuery(Base):
    """A named analytics query of the data staff's workspace, private or shared."""

    __tablename__ = "saved_queries"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[int] = pk()
    owner_id: Mapped[int] = fk("users.id", nullable=False)
    name: Mapped[str]
    sql: Mapped[str]
    shared: Mapped[bool] = mapped_column(default=False, server_default="false")
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[dt.datetime | None]


class ImportRun(Base):
    """One import of an outside export (Synthea, FHIR): what came in and what was rejected."""

    __tablename__ = "import_runs"
    __table_args__ = (one_of("status", ("running", "succeeded", "failed")),)

    id: Mapped[int] = pk()
    source_system: Mapped[str]  # synthea, fhir
    source_label: Mapped[str]  # folder or file name
    layout: Mapped[str | None]  # e.g. synthea-2.x, synthea-3.x
    started_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(default="running")
    started_by_id: Mapped[int | None] = fk("users.id")
    counts: Mapped[dict[str, Any] | None]  # table -> rows added
    rejected: Mapped[dict[str, Any] | None]  # file -> [{line, reason}], capped
    unknown: Mapped[dict[str, Any] | None]  # files and columns the importer does not know


class ImportLink(Base):
    """Which CIMS row an outside record became: makes a repeated import add nothing.

    One row per imported row, so every index costs every import: only the source key is
    indexed (imports look links up by it). Migration 0009 dropped the by-target and by-run
    indexes, which nothing read.
    """

    __tablename__ = "import_links"
    __table_args__ = (UniqueConstraint("source_system", "source_table", "source_id"),)

    id: Mapped[int] = pk()
    source_system: Mapped[str]
    source_table: Mapped[str]
    source_id: Mapped[str]
    target_table: Mapped[str]
    target_id: Mapped[int] = mapped_column(BigInteger)
    run_id: Mapped[int | None] = fk("import_runs.id")
