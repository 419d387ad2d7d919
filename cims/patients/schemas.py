"""Registration and edit input: one pydantic schema whose problems are translation keys."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Final

from pydantic import BaseModel, ConfigDict, model_validator

from cims.patients.models import BLOOD_TYPES, ID_TYPES, INSURANCE_TYPES, SEXES
from cims.patients.resident_id import (
    birth_date_from_id,
    normalize_resident_id,
    validate_mobile,
    validate_resident_id,
)
from cims.text_limits import MAX_ADDRESS, TOO_LONG_KEY, too_long

_PASSPORT_RE: Final = re.compile(r"[A-Z0-9]{5,20}")
_NATIONALITY_RE: Final = re.compile(r"[A-Z]{2}")
_MIN_BIRTH: Final = dt.date(1900, 1, 1)
UNIDENTIFIED_FAMILY_NAME: Final = "无名氏"


class InvalidPatient(ValueError):
    """Input (or a requested change) that cannot be accepted; ``problems`` are i18n keys."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(", ".join(problems))


class PatientInput(BaseModel):
    """What a registrar types for a new patient or a demographic edit (plain values)."""

    model_config = ConfigDict(str_strip_whitespace=True, frozen=True)

    family_name: str = ""
    given_name: str = ""
    sex: str = "U"
    birth_date: dt.date | None = None
    id_type: str = "resident_id"
    national_id: str = ""  # resident ID number, or passport number when id_type="passport"
    nationality: str = "CN"
    mobile: str = ""
    address: str = ""
    emergency_contact_name: str = ""
    emergency_contact_relation: str = ""
    emergency_contact_phone: str = ""
    insurance_type: str = "self_pay"
    insurance_number: str = ""
    blood_type: str = "unknown"
    is_unidentified: bool = False  # emergency patient who cannot be identified yet
    is_newborn: bool = False
    mother_mrn: str = ""  # newborns: the mother's MRN

    @model_validator(mode="after")
    def _birth_date_from_resident_id(self) -> PatientInput:
        """A resident ID carries the birth date: the registrar need not type it twice."""
        if self.birth_date is None and self.id_type == "resident_id" and self.national_id:
            try:
                derived = birth_date_from_id(normalize_resident_id(self.national_id))
            except ValueError:
                return self  # a malformed ID is reported by problems()
            object.__setattr__(self, "birth_date", derived)
        return self

    @property
    def document_number(self) -> str:
        """The ID number in canonical form ('' when none is given)."""
        return normalize_resident_id(self.national_id) if self.national_id else ""

    @property
    def full_name(self) -> str:
        """Chinese names run together; Latin names read given-name first."""
        if self.family_name.isascii() and self.given_name.isascii() and self.given_name:
            return f"{self.given_name} {self.family_name}".strip()
        return f"{self.family_name}{self.given_name}"

    @property
    def emergency_contact_json(self) -> str | None:
        """The emergency contact in the seed's JSON shape, or None when empty."""
        if not (self.emergency_contact_name or self.emergency_contact_phone):
            return None
        contact = {
            "name": self.emergency_contact_name,
            "relation": self.emergency_contact_relation,
            "phone": self.emergency_contact_phone,
        }
        return json.dumps(contact, ensure_ascii=False)

    def problems(self, today: dt.date) -> list[str]:
        """Every reason the input cannot be saved, as translation keys (empty when valid)."""
        found: list[str] = []
        found += self._vocabulary_problems()
        found += self._identity_problems(today)
        found += self._document_problems(today)
        if self.mobile and validate_mobile(self.mobile):
            found.append("patient.mobile_format")
        if self.emergency_contact_phone and validate_mobile(self.emergency_contact_phone):
            found.append("patient.contact_phone_format")
        if self.is_newborn and self.is_unidentified:
            found.append("patient.newborn_or_unidentified")
        if too_long(self.address, MAX_ADDRESS):
            found.append(TOO_LONG_KEY)
        return list(dict.fromkeys(found))

    def _vocabulary_problems(self) -> list[str]:
        found = []
        if self.sex not in SEXES:
            found.append("patient.sex_invalid")
        if self.id_type not in ID_TYPES:
            found.append("patient.id_type_invalid")
        if self.insurance_type not in INSURANCE_TYPES:
            found.append("patient.insurance_type_invalid")
        if self.blood_type not in BLOOD_TYPES:
            found.append("patient.blood_type_invalid")
        if _NATIONALITY_RE.fullmatch(self.nationality) is None:
            found.append("patient.nationality_format")
        return found

    def _identity_problems(self, today: dt.date) -> list[str]:
        found = []
        if not self.is_unidentified and not (self.family_name and self.given_name):
            found.append("patient.required_name")
        if self.birth_date is None:
            # An unconscious stranger's birth date is unknown; everyone else needs one.
            if not self.is_unidentified:
                found.append("patient.required_birth_date")
        elif self.birth_date > today:
            found.append("patient.birth_date_future")
        elif self.birth_date < _MIN_BIRTH:
            found.append("patient.birth_date_too_old")
        if self.is_newborn and not self.mother_mrn:
            found.append("patient.mother_required")
        return found

    def _document_problems(self, today: dt.date) -> list[str]:
        number = self.document_number
        if not number:
            # Only a stranger brought in unconscious or a baby may lack an identity document.
            return [] if self.is_unidentified or self.is_newborn else ["patient.required_id"]
        if self.id_type == "none":
            return ["patient.id_type_none_with_number"]
        if self.id_type == "passport":
            found = []
            if self.nationality == "CN":
                found.append("patient.passport_needs_foreign_nationality")
            if _PASSPORT_RE.fullmatch(number) is None:
                found.append("patient.passport_format")
            return found
        sex = self.sex if self.sex in ("M", "F") else None
        codes = validate_resident_id(number, birth_date=self.birth_date, sex=sex, today=today)
        return [f"patient.{code}" for code in codes]
