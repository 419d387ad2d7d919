"""Demo patients: identities, insurance, special cases, and their encrypted COPY rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from cims.demo import copyload as cl
from cims.demo.identities import generate_people, pinyin_initials
from cims.demo.vec import BoolArray, Clock, IntArray, TimeArray, pick
from cims.patients.models import BLOOD_TYPES, INSURANCE_TYPES
from cims.patients.mrn import make_mrns
from cims.security.crypto import FieldCipher

# Insurance mix by age group (<18, 18-59, 60+), columns follow INSURANCE_TYPES.
_INSURANCE_MIX: Final = (
    (0.00, 0.78, 0.08, 0.00, 0.14),
    (0.55, 0.25, 0.06, 0.03, 0.11),
    (0.45, 0.40, 0.02, 0.06, 0.07),
)
_INSURANCE_PREFIX: Final = ("ZG", "JM", "SY", "GF", "")
# A+ A- B+ B- AB+ AB- O+ O- unknown: Han Chinese ABO shares, Rh-negative ~0.3%.
_BLOOD_WEIGHTS: Final = (27.5, 0.1, 23.5, 0.1, 8.5, 0.05, 33.5, 0.1, 6.65)
SELF_PAY: Final = INSURANCE_TYPES.index("self_pay")
# Characters a registrar mishears or mistypes (同音字): a second record under a near name.
_HOMOPHONES: Final = dict(
    zip(
        "明伟丽静华军芳敏强磊洋勇艳杰娟涛超霞平刚",
        "铭玮莉婧桦君方民蔷垒阳永燕洁鹃滔潮侠萍钢",
        strict=True,
    )
)
UNKNOWN_BLOOD: Final = BLOOD_TYPES.index("unknown")


@dataclass
class People:
    """Everything about the patients that later generators need, as arrays."""

    family: NDArray[np.object_]
    given: NDArray[np.object_]
    full: NDArray[np.object_]
    male: BoolArray
    birth: NDArray[np.datetime64]  # datetime64[D]; NaT when unknown
    resident_id: NDArray[Any]
    mobile: NDArray[Any]
    address: NDArray[Any]
    contact: list[str | None]  # emergency contact as JSON
    insurance: IntArray  # index into INSURANCE_TYPES
    insurance_no: list[str | None]
    blood: IntArray  # index into BLOOD_TYPES
    unidentified: BoolArray
    newborn: BoolArray
    mother: IntArray  # row of the mother, -1 when none
    label: list[str | None]

    @property
    def n(self) -> int:
        """Number of patients."""
        return len(self.male)

    def age_at(
        self, when: NDArray[np.datetime64], rows: NDArray[np.int64] | None = None
    ) -> NDArray[np.float64]:
        """Age in years of patients ``rows`` (default: all) at ``when`` (unknown births: 45)."""
        born = self.birth if rows is None else self.birth[rows]
        days = (when.astype("datetime64[D]") - born).astype(np.float64)
        age: NDArray[np.float64] = np.where(np.isnat(born), 45.0, days / 365.2425)
        return age


def build_people(n: int, rng: np.random.Generator, clock: Clock) -> People:
    """Generate ``n`` patients including a few unidentified emergencies and newborns."""
    df = generate_people(n, rng, reference_date=clock.reference_date)
    family = df["family_name"].to_numpy(dtype=object)
    given = df["given_name"].to_numpy(dtype=object)
    full = df["full_name"].to_numpy(dtype=object)
    male = (df["sex"] == "M").to_numpy()
    birth = df["birth_date"].to_numpy().astype("datetime64[D]")
    rid = df["resident_id"].to_numpy(dtype=object)
    mobile = df["mobile"].to_numpy(dtype=object)
    address = df["address"].to_numpy(dtype=object)
    contact: list[str | None] = [
        json.dumps({"name": a, "relation": b, "phone": c}, ensure_ascii=False)
        for a, b, c in zip(
            df["emergency_contact_name"],
            df["emergency_contact_relation"],
            df["emergency_contact_phone"],
            strict=True,
        )
    ]
    age = (clock.today - birth).astype(np.float64) / 365.2425
    group = np.searchsorted(np.array([18.0, 60.0]), age, side="right")
    cdf = np.cumsum(np.array(_INSURANCE_MIX), axis=1)
    insurance = (rng.random(n)[:, None] >= cdf[group]).sum(axis=1).clip(0, 4).astype(np.int64)
    numbers = rng.integers(10**11, 10**12, size=n)
    insurance_no: list[str | None] = [
        None if t == SELF_PAY else f"{_INSURANCE_PREFIX[t]}{num}"
        for t, num in zip(insurance.tolist(), numbers.tolist(), strict=True)
    ]
    blood = pick(rng, _BLOOD_WEIGHTS, n)

    unidentified = np.zeros(n, bool)
    newborn = np.zeros(n, bool)
    mother = np.full(n, -1, np.int64)
    label: list[str | None] = [None] * n
    n_special = min(max(2, n // 2000), n // 20)
    if n_special:
        # Unidentified emergency patients: the last rows, known only by a temporary label.
        rows = np.arange(n - n_special, n)
        unidentified[rows] = True
        for k, row in enumerate(rows.tolist(), start=1):
            label[row] = f"无名氏-急诊-{k:04d}"
            family[row], given[row], full[row] = "无名氏", "", label[row]
            rid[row] = mobile[row] = address[row] = contact[row] = None
        birth[rows] = np.datetime64("NaT")
        insurance[rows] = SELF_PAY
        for row in rows.tolist():
            insurance_no[row] = None
        # Newborns born here in the last months, registered under their mother's name.
        young_women = np.flatnonzero(~male & (age >= 22) & (age <= 40) & ~unidentified)
        babies = np.arange(n - 2 * n_special, n - n_special)
        mothers = rng.choice(young_women, size=min(len(babies), len(young_women)), replace=False)
        babies = babies[: len(mothers)]
        newborn[babies] = True
        mother[babies] = mothers
        birth[babies] = clock.today - rng.integers(5, 180, size=len(babies)).astype("m8[D]")
        for baby, mum in zip(babies.tolist(), mothers.tolist(), strict=True):
            suffix = "之子" if male[baby] else "之女"
            family[baby] = family[mum]
            given[baby] = f"{given[mum]}{suffix}"
            full[baby] = f"{full[mum]}{suffix}"
            rid[baby] = None  # no resident ID yet
            mobile[baby], address[baby] = mobile[mum], address[mum]
            contact[baby] = json.dumps(
                {"name": full[mum], "relation": "parent", "phone": mobile[mum]},
                ensure_ascii=False,
            )
            insurance[baby] = SELF_PAY
            insurance_no[baby] = None
        blood[unidentified | newborn] = UNKNOWN_BLOOD
    return People(
        family=family, given=given, full=full, male=male, birth=birth, resident_id=rid,
        mobile=mobile, address=address, contact=contact, insurance=insurance,
        insurance_no=insurance_no, blood=blood, unidentified=unidentified, newborn=newborn,
        mother=mother, label=label,
    )  # fmt: skip


def with_planted_duplicates(people: People, rng: np.random.Generator, *, keep: set[int]) -> People:
    """The patients as registered: a few (about 1 in 500) are second records of another.

    The copy came without the ID card, under a misheard given name (同音字), with the same
    birth date and mobile: what the registrar's duplicate review exists to catch. Applied
    after the clinical history was generated, to a row of the same sex and a birth year at
    most two apart, so that history stays plausible; ``keep`` rows (demo logins) are spared.
    """
    n = people.n
    ordinary = np.flatnonzero(~people.unidentified & ~people.newborn & (people.mother < 0))
    ordinary = ordinary[~np.isin(ordinary, list(keep)) & ~np.isin(ordinary, people.mother)]
    wanted = max(2, n // 500) if n >= 200 else 0
    if not wanted:
        return people
    year = people.birth.astype("datetime64[Y]").astype(np.int64)
    pool: dict[tuple[bool, int], list[int]] = {}
    for row in rng.permutation(ordinary)[: wanted * 40].tolist():
        pool.setdefault((bool(people.male[row]), int(year[row])), []).append(row)
    family, given, full = people.family.copy(), people.given.copy(), people.full.copy()
    birth, rid = people.birth.copy(), people.resident_id.copy()
    mobile, address, contact = people.mobile.copy(), people.address.copy(), list(people.contact)
    used: set[int] = set()
    planted = 0
    for source in rng.permutation(ordinary).tolist():
        name = str(given[source] or "")
        if planted == wanted or source in used or not name or not mobile[source]:
            continue
        if name[-1] not in _HOMOPHONES:
            continue
        near = [
            row
            for delta in (0, -1, 1, -2, 2)
            for row in pool.get((bool(people.male[source]), int(year[source]) + delta), [])
            if row != source and row not in used
        ]
        if not near:
            continue
        copy = near[0]
        used.update((source, copy))
        given[copy] = name[:-1] + _HOMOPHONES[name[-1]]
        family[copy] = family[source]
        full[copy] = f"{family[source]}{given[copy]}"
        birth[copy], rid[copy] = birth[source], None
        mobile[copy], address[copy], contact[copy] = (
            mobile[source],
            address[source],
            contact[source],
        )
        planted += 1
    return replace(
        people, family=family, given=given, full=full, birth=birth, resident_id=rid,
        mobile=mobile, address=address, contact=contact,
    )  # fmt: skip


def patients_table(
    people: People,
    *,
    ids: IntArray,
    cipher: FieldCipher,
    clock: Clock,
    registered: TimeArray,
    death_day: NDArray[np.datetime64],
) -> Any:
    """The patients COPY table: sensitive fields encrypted per row, blind indexes computed."""
    n = people.n
    row_ids = ids.tolist()

    def seal(values: Any, column: str) -> list[bytes | None]:
        return [
            None if v is None else cipher.encrypt(v, table="patients", column=column, row_id=i)
            for v, i in zip(values, row_ids, strict=True)
        ]

    def index(values: Any, purpose: str) -> list[bytes | None]:
        return [None if v is None else cipher.blind_index(v, purpose=purpose) for v in values]

    name_phone4 = [
        None if p is None else f"{name}{p[-4:]}"
        for name, p in zip(people.full, people.mobile, strict=True)
    ]
    has_id = np.array([r is not None for r in people.resident_id], bool)
    mother_id = np.where(people.mother >= 0, ids[np.maximum(people.mother, 0)], 0)
    return cl.table(
        {
            "id": cl.ints(ids),
            "mrn": cl.texts(make_mrns(int(ids[0]), n) if n else np.array([], str)),
            "family_name": cl.texts(people.family),
            "given_name": cl.texts(people.given),
            "full_name": cl.texts(people.full),
            "name_initials": cl.texts(pinyin_initials(str(x) for x in people.full)),
            "sex": cl.labels(people.male.astype(np.int64), ("F", "M")),
            "birth_date": cl.dates(people.birth),
            "death_date": cl.dates(death_day),
            "id_type": cl.labels(has_id.astype(np.int64), ("none", "resident_id")),
            "national_id_enc": cl.hexes(seal(people.resident_id, "national_id")),
            "national_id_bidx": cl.hexes(index(people.resident_id, "national_id")),
            "phone_enc": cl.hexes(seal(people.mobile, "phone")),
            "phone_bidx": cl.hexes(index(people.mobile, "phone")),
            "name_phone4_bidx": cl.hexes(index(name_phone4, "name_phone4")),
            "address_enc": cl.hexes(seal(people.address, "address")),
            "emergency_contact_enc": cl.hexes(seal(people.contact, "emergency_contact")),
            "nationality": cl.const("CN", n),
            "insurance_type": cl.labels(people.insurance, INSURANCE_TYPES),
            "insurance_number": cl.texts(people.insurance_no),
            "blood_type": cl.labels(people.blood, BLOOD_TYPES),
            "is_unidentified": cl.bools(people.unidentified),
            "temporary_label": cl.texts(people.label),
            "mother_id": cl.ints(mother_id, mask=people.mother < 0),
            "registered_at": cl.times(clock, registered),
            "created_at": cl.times(clock, registered),
        }
    )
