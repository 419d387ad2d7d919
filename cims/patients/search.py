"""One search box for the front desk: MRN, ID, mobile, name, pinyin initials or name+phone4.

Exact keys go through the MRN column or the keyed blind indexes; names use the
``text_pattern_ops`` prefix indexes, so every kind of query is an index lookup.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Final

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import Session

from cims.patients.models import Patient
from cims.patients.mrn import is_valid_mrn
from cims.patients.service import build_view
from cims.security import audit
from cims.security.crypto import FieldCipher, load_cipher
from cims.security.rbac import Actor, Privilege, requires

_RESIDENT_ID: Final = re.compile(r"[0-9]{17}[0-9Xx]")
_MOBILE: Final = re.compile(r"1[3-9][0-9]{9}")
_NAME_PHONE4: Final = re.compile(r"(?P<name>[^0-9]+?)\s*(?P<digits>[0-9]{4})")
_INITIALS: Final = re.compile(r"[A-Za-z]{1,10}")
# Lower is better: an exact key beats an exact name beats a prefix.
RANK_EXACT_KEY: Final = 0
RANK_NAME_EXACT: Final = 1
RANK_PREFIX: Final = 2


@dataclass(frozen=True)
class SearchHit:
    """One result row, masked per role."""

    patient_id: int
    mrn: str
    full_name: str
    sex: str
    birth_date: dt.date | None
    national_id: str
    phone: str
    rank: int


def escape_like(value: str) -> str:
    """Escape LIKE wildcards with PostgreSQL's default escape character (backslash)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def classify(query: str) -> str:
    """Which key a query is: mrn, id, phone, name_phone4, pinyin or name ('' when empty)."""
    value = query.strip()
    if not value:
        return ""
    if is_valid_mrn(value):
        return "mrn"
    if _RESIDENT_ID.fullmatch(value):
        return "id"
    if _MOBILE.fullmatch(value):
        return "phone"
    if _NAME_PHONE4.fullmatch(value):
        return "name_phone4"
    if _INITIALS.fullmatch(value):
        return "pinyin"
    return "name"


def _live(query: Select[Patient], birth_date: dt.date | None) -> Select[Patient]:
    query = query.where(Patient.voided.is_(False), Patient.merged_into_id.is_(None))
    return query if birth_date is None else query.where(Patient.birth_date == birth_date)


def _find(
    session: Session,
    cipher: FieldCipher,
    kind: str,
    value: str,
    birth_date: dt.date | None,
    limit: int,
) -> list[tuple[Patient, int]]:
    exact: ColumnElement[bool] | None = None
    if kind == "mrn":
        exact = Patient.mrn == value
    elif kind == "id":
        exact = Patient.national_id_bidx == cipher.blind_index(value, purpose="national_id")
    elif kind == "phone":
        exact = Patient.phone_bidx == cipher.blind_index(value, purpose="phone")
    elif kind == "name_phone4":
        match = _NAME_PHONE4.fullmatch(value)
        assert match is not None
        key = match["name"].strip() + match["digits"]
        exact = Patient.name_phone4_bidx == cipher.blind_index(key, purpose="name_phone4")
    if exact is not None:
        rows = session.execute(_live(select(Patient).where(exact), birth_date).limit(limit))
        return [(p, RANK_EXACT_KEY) for p in rows.scalars()]
    if kind == "pinyin":
        # No ORDER BY: the LIMIT then stops the prefix index scan after `limit` rows.
        initials = Patient.name_initials.like(escape_like(value.lower()) + "%")
        latin = Patient.full_name.like(escape_like(value) + "%")  # foreigners' names
        rows = session.execute(
            _live(select(Patient).where(or_(initials, latin)), birth_date).limit(limit)
        )
        return [(p, RANK_PREFIX) for p in rows.scalars()]
    named = session.execute(
        _live(select(Patient).where(Patient.full_name == value), birth_date).limit(limit)
    ).scalars()
    found = [(p, RANK_NAME_EXACT) for p in named]
    if len(found) < limit:
        pattern = escape_like(value) + "%"
        prefix = _live(
            select(Patient).where(Patient.full_name.like(pattern), Patient.full_name != value),
            birth_date,
        )
        rows = session.execute(prefix.limit(limit - len(found)))
        found += [(p, RANK_PREFIX) for p in rows.scalars()]
    return found


@requires(Privilege.VIEW_PATIENTS)
def search_patients(
    *,
    session: Session,
    actor: Actor,
    query: str,
    birth_date: dt.date | None = None,
    limit: int = 20,
) -> list[SearchHit]:
    """Live patients matching the box's text (and birth date), best first, masked per role."""
    value = query.strip()
    kind = classify(value)
    if not kind:
        return []
    cipher = load_cipher(session)
    found = _find(session, cipher, kind, value, birth_date, limit)
    hits = []
    for patient, rank in found:
        view = build_view(cipher, actor, patient)
        hits.append(
            SearchHit(
                patient_id=patient.id,
                mrn=patient.mrn,
                full_name=patient.full_name,
                sex=patient.sex,
                birth_date=patient.birth_date,
                national_id=view.national_id,
                phone=view.phone,
                rank=rank,
            )
        )
    hits.sort(key=lambda h: (h.rank, h.full_name, h.mrn))
    audit.record(
        session,
        actor,
        "patients.search",
        object_type="patient_search",
        detail={"key": kind, "birth_date": birth_date is not None, "results": len(hits)},
    )
    return hits
