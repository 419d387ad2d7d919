"""Organisation: departments, wards and beds."""

from __future__ import annotations

from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cims.base import Base, Tracked, fk, one_of, pk

DEPARTMENT_KINDS = ("clinical", "emergency", "support", "administrative")


class Department(Tracked, Base):
    """A hospital department (内科, 外科, ...); clinical ones hold doctors and schedules."""

    __tablename__ = "departments"
    __table_args__ = (one_of("kind", DEPARTMENT_KINDS),)

    id: Mapped[int] = pk()
    code: Mapped[str] = mapped_column(unique=True)
    name_zh: Mapped[str]
    name_en: Mapped[str]
    kind: Mapped[str] = mapped_column(default="clinical")
    active: Mapped[bool] = mapped_column(default=True, server_default="true")


class Ward(Tracked, Base):
    """An inpatient ward belonging to a department."""

    __tablename__ = "wards"

    id: Mapped[int] = pk()
    code: Mapped[str] = mapped_column(unique=True)
    name_zh: Mapped[str]
    name_en: Mapped[str]
    department_id: Mapped[int] = fk("departments.id", nullable=False, index=True)
    active: Mapped[bool] = mapped_column(default=True, server_default="true")


class Bed(Tracked, Base):
    """One bed in a ward; occupancy comes from bed assignments."""

    __tablename__ = "beds"
    __table_args__ = (UniqueConstraint("ward_id", "code"),)

    id: Mapped[int] = pk()
    ward_id: Mapped[int] = fk("wards.id", nullable=False)
    code: Mapped[str]
    active: Mapped[bool] = mapped_column(default=True, server_default="true")
