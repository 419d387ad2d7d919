"""The formulary the prescribing form offers, and the allergy classes a prescription is checked
against. Data, not logic: built from the demo hospital's drug and allergen lists.

Cross-reactivity choices (a prescriber may always override with a reason):

* penicillin allergy warns for every penicillin (amoxicillin, ... "-cillin", "西林");
* cephalosporin allergy warns for every cephalosporin (cefuroxime, ceftriaxone, "头孢");
  a penicillin allergy does NOT warn for cephalosporins: true cross-reactivity is ~1 % and
  mostly tied to shared side chains, and a warning on every cephalosporin would train
  prescribers to click through the warnings that matter;
* aspirin allergy warns for aspirin and the other NSAIDs (ibuprofen, diclofenac): aspirin-
  exacerbated reactions are a class effect of COX-1 inhibition; paracetamol is not an NSAID;
* sulfonamide allergy warns for sulfonamide antibiotics only, NOT for furosemide or other
  non-antibiotic sulfonamides: the allergy is driven by the antibiotics' arylamine group,
  which furosemide lacks, and studies find no sulfonamide-specific cross-reactivity.
  A recorded allergy to furosemide itself still warns (substance name match).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from cims.demo.vocab import ALLERGENS, DRUGS


@dataclass(frozen=True)
class FormularyDrug:
    """A drug the prescribing form offers, with its usual dose as the prefilled default."""

    code: str
    name: str  # "中文 / English"
    dose: Decimal
    dose_unit: str
    route: str
    frequency: str
    duration_days: int
    quantity: Decimal  # priced units for the usual course


def _quantity(units_per_day: float, days: int) -> Decimal:
    return max(Decimal(1), Decimal(str(round(units_per_day * days, 2))))


FORMULARY: Final[tuple[FormularyDrug, ...]] = tuple(
    FormularyDrug(
        d.key,
        d.name,
        Decimal(str(d.dose)),
        d.unit,
        d.route,
        d.frequency,
        d.days,
        _quantity(d.units_per_day, d.days),
    )
    for d in DRUGS
)
FORMULARY_BY_CODE: Final = {d.code: d for d in FORMULARY}

ROUTES: Final = ("oral", "iv", "im", "sc", "inhaled", "topical")
FREQUENCIES: Final = ("qd", "bid", "tid", "qid", "qn", "prn")

# Drug class of each formulary drug.
DRUG_CLASSES: Final[dict[str, frozenset[str]]] = {
    "AMOX": frozenset({"penicillin"}),
    "CEFU": frozenset({"cephalosporin"}),
    "CEFTR": frozenset({"cephalosporin"}),
    "ASA": frozenset({"nsaid"}),
    "IBU": frozenset({"nsaid"}),
    "DICLO": frozenset({"nsaid"}),
}
# The class an allergen (by its code in the demo allergen list) puts a patient at risk from.
_ALLERGEN_CLASS_BY_NAME: Final = {
    "Penicillin": "penicillin",
    "Cephalosporins": "cephalosporin",
    "Aspirin": "nsaid",
    "Sulfonamides": "sulfonamide_antibiotic",
}
ALLERGEN_CLASSES: Final[dict[str, str]] = {
    code: _ALLERGEN_CLASS_BY_NAME[name.partition(" / ")[2]]
    for name, code, _weight in ALLERGENS
    if name.partition(" / ")[2] in _ALLERGEN_CLASS_BY_NAME
}
# Words that name a class in free text (an allergy typed by hand, a drug not in the formulary).
CLASS_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "penicillin": ("penicillin", "cillin", "青霉素", "西林"),
    "cephalosporin": ("cephalosporin", "cef", "ceph", "头孢"),
    "nsaid": (
        "nsaid",
        "aspirin",
        "ibuprofen",
        "diclofenac",
        "naproxen",
        "阿司匹林",
        "布洛芬",
        "双氯芬酸",
        "萘普生",
        "非甾体",
    ),
    "sulfonamide_antibiotic": ("sulfonamide", "sulfamethoxazole", "sulfadiazine", "磺胺"),
}


def _words_classes(text: str) -> set[str]:
    lowered = text.lower()
    return {cls for cls, words in CLASS_WORDS.items() if any(w in lowered for w in words)}


def drug_classes(drug_code: str, drug_name: str) -> set[str]:
    """The allergy classes a drug belongs to (formulary table, else words in its name)."""
    return set(DRUG_CLASSES.get(drug_code, frozenset())) | _words_classes(drug_name)


def allergy_classes(substance: str, substance_code: str | None) -> set[str]:
    """The drug classes a recorded allergy warns about."""
    found = _words_classes(substance)
    if substance_code and substance_code in ALLERGEN_CLASSES:
        found.add(ALLERGEN_CLASSES[substance_code])
    return found


def _names(text: str) -> set[str]:
    """The parts of a "中文 / English" name, lower-cased, without short fragments."""
    return {part.strip().lower() for part in text.split("/") if len(part.strip()) >= 2}


def conflicts(drug_code: str, drug_name: str, substance: str, substance_code: str | None) -> bool:
    """Whether a drug conflicts with one allergy: same substance or same class."""
    if substance_code and substance_code == drug_code:
        return True
    drug_text = drug_name.lower()
    if any(name in drug_text for name in _names(substance)):
        return True
    return bool(drug_classes(drug_code, drug_name) & allergy_classes(substance, substance_code))
