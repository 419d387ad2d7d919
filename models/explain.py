"""Why a score is high: each feature's contribution, told in plain Chinese and English.

Logistic regression: coefficient x standardised value (log-odds), averaged over the
calibration folds' models; these add up, with the intercept, to the model's logit.
Gradient boosting: for the globally most important features only, the drop in the
predicted probability when that one feature is reset to the training mean (cheap and
local; interactions are not split out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

TOP_FACTORS = 3
HGB_CHECKED = 6
_WEEKDAYS = (
    ("星期一", "Monday"),
    ("星期二", "Tuesday"),
    ("星期三", "Wednesday"),
    ("星期四", "Thursday"),
    ("星期五", "Friday"),
    ("星期六", "Saturday"),
    ("星期日", "Sunday"),
)

# feature -> (zh, en) templates; ``{n}`` is the value rounded, ``{pct}`` a percentage.
TEMPLATES: dict[str, tuple[str, str]] = {
    "age": ("年龄 {n} 岁", "age {n}"),
    "male": ("男性", "male"),
    "length_of_stay": ("本次住院 {n} 天", "{n}-day hospital stay"),
    "emergency_admission": ("经急诊入院", "admitted through the emergency department"),
    "charlson": ("合并症评分 {n}", "comorbidity score {n}"),
    "ed_visits_6m": ("近6个月急诊 {n} 次", "{n} emergency visits in the last 6 months"),
    "admissions_6m": ("近6个月住院 {n} 次", "{n} admissions in the last 6 months"),
    "admissions_12m": ("近12个月住院 {n} 次", "{n} admissions in the last 12 months"),
    "outpatient_visits_12m": ("近12个月门诊 {n} 次", "{n} clinic visits in the last 12 months"),
    "heart_failure": ("心力衰竭", "heart failure"),
    "copd": ("慢性肺病", "chronic lung disease"),
    "renal_disease": ("慢性肾脏病", "chronic kidney disease"),
    "diabetes": ("糖尿病", "diabetes"),
    "diagnoses_this_stay": ("本次住院诊断 {n} 项", "{n} diagnoses during this stay"),
    "lead_days": ("提前 {n} 天预约", "booked {n} days ahead"),
    "same_day": ("当天预约", "booked the same day"),
    "channel_portal": ("网上预约", "booked online"),
    "channel_phone": ("电话预约", "booked by phone"),
    "past_appointments": ("既往预约 {n} 次", "{n} past appointments"),
    "past_no_shows": ("既往爽约 {n} 次", "{n} missed appointments before"),
    "past_no_show_rate": ("既往爽约率 {pct}", "past no-show rate {pct}"),
    "visits_12m": ("近12个月就诊 {n} 次", "{n} visits in the last 12 months"),
    "chronic_conditions": ("慢性病 {n} 种", "{n} chronic conditions"),
    "scheduled_hour": ("预约时间 {n} 点", "appointment at {n}:00"),
}
BINARY = frozenset(
    {
        "male",
        "emergency_admission",
        "heart_failure",
        "copd",
        "renal_disease",
        "diabetes",
        "same_day",
        "channel_portal",
        "channel_phone",
    }
)


@dataclass(frozen=True)
class Factor:
    """One reason behind a score."""

    feature: str
    value: float
    contribution: float
    zh: str
    en: str

    def as_json(self) -> dict[str, Any]:
        """The stored form (risk_scores.factors)."""
        return {
            "feature": self.feature,
            "value": round(self.value, 4),
            "contribution": round(self.contribution, 5),
            "zh": self.zh,
            "en": self.en,
        }


def describe(feature: str, value: float) -> tuple[str, str]:
    """The plain-words phrase of a feature value in Chinese and English."""
    if feature == "scheduled_weekday":
        return _WEEKDAYS[int(value) % 7][0] + "就诊", "appointment on a " + _WEEKDAYS[
            int(value) % 7
        ][1]
    zh, en = TEMPLATES.get(feature, (feature + " {n}", feature.replace("_", " ") + " {n}"))
    params = {"n": f"{value:.0f}" if abs(value) >= 1 else f"{value:.1f}", "pct": f"{value:.0%}"}
    return zh.format(**params), en.format(**params)


def lr_contributions(model: Any, x: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per-row, per-feature log-odds contributions of a calibrated LR, and the intercepts."""
    total = np.zeros(x.shape, dtype=float)
    intercept = np.zeros(len(x), dtype=float)
    members = model.calibrated_classifiers_
    for member in members:
        pipeline = member.estimator
        scaler, logistic = pipeline[0], pipeline[-1]
        z = (x.to_numpy(dtype=float) - scaler.mean_) / scaler.scale_
        total += z * logistic.coef_[0]
        intercept += logistic.intercept_[0]
    return total / len(members), intercept / len(members)


def reset_contributions(
    predict: Callable[[pd.DataFrame], np.ndarray],
    x: pd.DataFrame,
    means: dict[str, float],
    features: list[str],
) -> np.ndarray:
    """Probability drop when each listed feature is reset to the mean (others zero)."""
    base = predict(x)
    out = np.zeros(x.shape, dtype=float)
    for feature in features:
        reset = x.copy()
        reset[feature] = means[feature]
        out[:, x.columns.get_loc(feature)] = base - predict(reset)
    return out


def contributions(
    kind: str,
    model: Any,
    x: pd.DataFrame,
    explain_meta: dict[str, Any],
    predict: Callable[[pd.DataFrame], np.ndarray],
) -> np.ndarray:
    """The contribution matrix (rows x features) for the model's kind."""
    if kind == "lr":
        return lr_contributions(model, x)[0]
    importance: dict[str, float] = explain_meta["importance"]
    checked = sorted(importance, key=lambda f: -importance[f])[:HGB_CHECKED]
    return reset_contributions(predict, x, explain_meta["mean"], checked)


def top_factors(
    x: pd.DataFrame, matrix: np.ndarray, limit: int = TOP_FACTORS
) -> list[list[Factor]]:
    """Each row's strongest risk-raising factors, in plain words."""
    out: list[list[Factor]] = []
    columns = list(x.columns)
    values = x.to_numpy(dtype=float)
    for row in range(len(x)):
        order = np.argsort(-matrix[row], kind="stable")
        factors: list[Factor] = []
        for col in order:
            weight = float(matrix[row, col])
            feature, value = columns[col], float(values[row, col])
            if weight <= 0 or len(factors) >= limit:
                break
            if feature in BINARY and value == 0:
                continue  # an absent condition is not a reason worth telling
            zh, en = describe(feature, value)
            factors.append(Factor(feature, value, weight, zh, en))
        out.append(factors)
    return out
