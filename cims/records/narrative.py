"""A short narrative of a patient summary from catalog templates, each sentence sourced."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cims.clock import day_bounds
from cims.i18n import t
from cims.records.summary import (
    CareGap,
    EncounterItem,
    LabSeries,
    PatientSummary,
    ProblemItem,
)

MAX_LAB_SENTENCES = 3
# A change under this share of the earlier value reads as "stable", not a trend.
STABLE_RATIO = 0.05


@dataclass(frozen=True)
class Source:
    """The record a statement was generated from."""

    table: str
    row_id: int

    def tag(self) -> str:
        """Compact label such as ``observations#42``."""
        return f"{self.table}#{self.row_id}"


@dataclass(frozen=True)
class Statement:
    """One sentence of the narrative and the rows it states."""

    text: str
    sources: tuple[Source, ...]

    @property
    def source(self) -> Source:
        """The primary source (the first one)."""
        return self.sources[0]


def localise_name(text: str, language: str) -> str:
    """The part of a bilingual "中文 / English" name in ``language`` (whole text otherwise)."""
    zh, sep, en = text.partition(" / ")
    if not sep:
        return text
    return zh.strip() if language == "zh" else en.strip()


def narrative(summary: PatientSummary, language: str) -> list[Statement]:
    """Sentences about the patient in ``language``, each pointing at its source rows."""
    statements = [_who(summary, language)]
    statements += _labs(summary, language)
    admitted = _admissions(summary, language)
    if admitted:
        statements.append(admitted)
    statements.append(_allergies(summary, language))
    if summary.medications:
        # One mention per drug: repeat prescriptions of the same drug are one medication.
        names = list(
            dict.fromkeys(
                _mid(localise_name(m.drug_name, language), language) for m in summary.medications
            )
        )
        statements.append(
            Statement(
                t("summary.narr_meds", language, count=len(names), names=_join(names, language)),
                tuple(Source("prescriptions", m.id) for m in summary.medications),
            )
        )
    statements += _gaps(summary, language)
    if summary.billing.unpaid_count:
        statements.append(
            Statement(
                t("summary.narr_unpaid", language, count=summary.billing.unpaid_count),
                tuple(Source("invoices", i) for i in summary.billing.invoice_ids),
            )
        )
    return statements


def _who(summary: PatientSummary, language: str) -> Statement:
    header = summary.header
    sex = {
        "M": t("summary.narr_man", language),
        "F": t("summary.narr_woman", language),
    }.get(header.sex, t("summary.narr_person", language))
    age = "?" if header.age is None else str(header.age)
    sources = (Source("patients", header.patient_id),)
    if not summary.problems:
        return Statement(t("summary.narr_who", language, age=age, sex=sex), sources)
    problems = _join([_problem(p, language) for p in summary.problems], language)
    return Statement(
        t("summary.narr_who_with", language, age=age, sex=sex, problems=problems),
        sources + tuple(Source("problems", p.id) for p in summary.problems),
    )


def _problem(problem: ProblemItem, language: str) -> str:
    name = _mid(localise_name(problem.description, language), language)
    if problem.onset_date is None:
        return name
    return t("summary.narr_since", language, problem=name, year=problem.onset_date.year)


def _labs(summary: PatientSummary, language: str) -> list[Statement]:
    # HbA1c always (the diabetes marker), otherwise only labs whose latest result is abnormal.
    chosen = [s for s in summary.labs if s.code == "4548-4" or s.abnormal]
    return [_lab(s, language) for s in chosen[:MAX_LAB_SENTENCES]]


def _lab(series: LabSeries, language: str) -> Statement:
    latest = series.latest
    # Both values at the same precision: "9.0 from 9.2", never "9 from 9.2".
    places = max(_places(p.value) for p in series.points[-2:])
    params = {
        "lab": localise_name(series.name, language),
        "value": f"{latest.value:.{places}f}",
        "unit": _unit(series.unit),
        "day": latest.observed_at.date().isoformat(),
    }
    if len(series.points) < 2:
        return Statement(
            t("summary.narr_lab", language, **params), (Source("observations", latest.id),)
        )
    earlier = series.points[-2]
    change = latest.value - earlier.value
    if abs(change) <= abs(earlier.value) * STABLE_RATIO:
        key = "summary.narr_lab_stable"
    elif change > 0:
        key = "summary.narr_lab_rising"
    else:
        key = "summary.narr_lab_falling"
    return Statement(
        t(key, language, previous=f"{earlier.value:.{places}f}", **params),
        (Source("observations", latest.id), Source("observations", earlier.id)),
    )


def _admissions(summary: PatientSummary, language: str) -> Statement | None:
    stays = admissions_since(summary, summary.today - dt.timedelta(days=365))
    if not stays:
        return None
    last = stays[-1]
    sources = tuple(Source("encounters", e.id) for e in reversed(stays))
    if last.diagnosis:
        reason = _mid(localise_name(last.diagnosis, language), language)
        key = "summary.narr_admitted_once_for" if len(stays) == 1 else "summary.narr_admitted_for"
        text = t(key, language, count=len(stays), reason=reason)
    else:
        key = "summary.narr_admitted_once" if len(stays) == 1 else "summary.narr_admitted"
        text = t(key, language, count=len(stays))
    return Statement(text, sources)


def _allergies(summary: PatientSummary, language: str) -> Statement:
    if not summary.allergies:
        return Statement(
            t("summary.narr_no_allergies", language),
            (Source("patients", summary.header.patient_id),),
        )
    names = [_mid(localise_name(a.substance, language), language) for a in summary.allergies]
    return Statement(
        t("summary.narr_allergies", language, names=_join(names, language)),
        tuple(Source("allergies", a.id) for a in summary.allergies),
    )


def _gaps(summary: PatientSummary, language: str) -> list[Statement]:
    return [
        Statement(gap_text(gap, language), (Source(gap.source_table, gap.source_id),))
        for gap in summary.care_gaps
    ]


def gap_text(gap: CareGap, language: str) -> str:
    """One care gap as a sentence in ``language``."""
    label = localise_name(gap.label, language)
    day = gap.since.isoformat() if gap.since else "?"
    if gap.kind == "missed_follow_up":
        return t("summary.narr_gap_follow_up", language, what=label, day=day)
    problem = _mid(localise_name(gap.problem or "", language), language)
    if gap.since is None:
        return t("summary.narr_gap_lab_never", language, lab=label, problem=problem)
    return t("summary.narr_gap_lab", language, lab=label, day=day, problem=problem)


def _join(items: list[str], language: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    if language == "zh":
        return "、".join(items[:-1]) + "和" + items[-1]
    return ", ".join(items[:-1]) + " and " + items[-1]


def _mid(name: str, language: str) -> str:
    """An English name as it reads mid-sentence: lower-case unless an acronym (COPD, HbA1c)."""
    if language == "zh" or len(name) < 2 or not name[1].islower():
        return name
    return name[0].lower() + name[1:]


def _places(value: float) -> int:
    return len(f"{value:.2f}".rstrip("0").partition(".")[2])


def _unit(unit: str | None) -> str:
    # "9.1%" but "142 mmol/L": a percent sign sits on the number.
    if not unit:
        return ""
    return unit if unit == "%" else f" {unit}"


def admissions_since(summary: PatientSummary, since: dt.date) -> tuple[EncounterItem, ...]:
    """Inpatient stays that started on or after ``since`` (hospital-local), oldest first."""
    start, _ = day_bounds(since)
    return tuple(
        e for e in summary.encounters if e.encounter_type == "inpatient" and e.started_at >= start
    )
