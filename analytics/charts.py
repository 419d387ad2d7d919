"""Dashboard figures as pure functions: a query's frame and a language in, a plotly figure out.

Suppressed rows (fewer than five patients) arrive with blank measures and are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from cims.i18n import t

WEEKDAYS: Final = (1, 2, 3, 4, 5, 6, 7)


def _shown(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows that are not suppressed."""
    if "suppressed" in frame.columns:
        return frame[~frame["suppressed"].astype(bool)]
    return frame


def _layout(figure: go.Figure, height: int = 320) -> go.Figure:
    figure.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def _departments(frame: pd.DataFrame, names: Mapping[str, str]) -> pd.DataFrame:
    out = frame.copy()
    if "department_code" in out.columns:
        out["department"] = out["department_code"].map(lambda c: names.get(c, c))
    return out


def volume(frame: pd.DataFrame, language: str, names: Mapping[str, str]) -> go.Figure:
    """Visits over time, one line per department, dashed by visit type."""
    data = _departments(_shown(frame), names)
    data["type"] = data["encounter_type"].map(lambda v: t(f"analytics.type_{v}", language))
    figure = px.line(
        data,
        x="period",
        y="visits",
        color="department",
        line_dash="type",
        markers=True,
        labels={
            "period": t("analytics.axis_period", language),
            "visits": t("analytics.axis_visits", language),
            "department": t("analytics.axis_department", language),
            "type": t("analytics.axis_type", language),
        },
    )
    return _layout(figure)


def workload(frame: pd.DataFrame, language: str, names: Mapping[str, str]) -> go.Figure:
    """Visits per pseudonymous doctor, coloured by department."""
    data = _departments(_shown(frame), names)
    figure = px.bar(
        data,
        x="doctor_key",
        y="visits",
        color="department",
        labels={
            "doctor_key": t("analytics.axis_doctor", language),
            "visits": t("analytics.axis_visits", language),
            "department": t("analytics.axis_department", language),
        },
    )
    return _layout(figure)


def revenue(frame: pd.DataFrame, language: str, _names: Mapping[str, str]) -> go.Figure:
    """Charges over time, stacked insurance and patient shares."""
    data = _shown(frame)
    figure = go.Figure()
    for column in ("insurance", "patient"):
        figure.add_bar(
            x=data["period"], y=data[column], name=t(f"analytics.share_{column}", language)
        )
    figure.update_layout(barmode="stack", yaxis_title=t("analytics.axis_amount", language))
    return _layout(figure)


def payer_mix(frame: pd.DataFrame, language: str, _names: Mapping[str, str]) -> go.Figure:
    """Share of charges by the patients' insurance type."""
    data = _shown(frame).copy()
    data["payer"] = data["insurance_type"].map(lambda v: t(f"insurance.{v}", language))
    return _layout(px.pie(data, names="payer", values="revenue", hole=0.4))


def ar_aging(frame: pd.DataFrame, language: str, _names: Mapping[str, str]) -> go.Figure:
    """Open patient balances by age bucket (days since issue)."""
    data = _shown(frame)
    figure = px.bar(
        data,
        x="bucket",
        y="balance",
        labels={
            "bucket": t("analytics.axis_days", language),
            "balance": t("analytics.axis_amount", language),
        },
    )
    return _layout(figure)


def wait(frame: pd.DataFrame, language: str, _names: Mapping[str, str]) -> go.Figure:
    """How many patients waited how long from check-in to being seen (10-minute bins)."""
    data = _shown(frame).copy()
    data["bin"] = data["wait_min"].map(
        lambda m: f"{int(m)}+" if m >= 60 else f"{int(m)}-{int(m) + 10}"
    )
    figure = px.bar(
        data,
        x="bin",
        y="appointments",
        labels={
            "bin": t("analytics.axis_wait", language),
            "appointments": t("analytics.axis_appointments", language),
        },
    )
    return _layout(figure)


def _rate_bars(data: pd.DataFrame, x: str, x_label: str, language: str) -> go.Figure:
    figure = px.bar(
        data,
        x=x,
        y="no_show_rate",
        labels={x: x_label, "no_show_rate": t("analytics.axis_no_show", language)},
    )
    figure.update_yaxes(tickformat=".0%")
    return _layout(figure, 280)


def no_show_lead(frame: pd.DataFrame, language: str, _names: Mapping[str, str]) -> go.Figure:
    """No-show rate by booking lead time."""
    return _rate_bars(_shown(frame), "lead_days", t("analytics.axis_lead", language), language)


def no_show_weekday(frame: pd.DataFrame, language: str, _names: Mapping[str, str]) -> go.Figure:
    """No-show rate by weekday."""
    data = _shown(frame).copy()
    data["day"] = data["weekday"].map(lambda d: t(f"analytics.weekday_{int(d)}", language))
    return _rate_bars(data, "day", t("analytics.axis_weekday", language), language)


def diagnoses(frame: pd.DataFrame, language: str, _names: Mapping[str, str]) -> go.Figure:
    """The most frequent primary diagnoses (bilingual titles show the language's half)."""
    data = _shown(frame).copy()
    half = 0 if language == "zh" else -1
    data["label"] = [
        f"{code} {str(text).split(' / ')[half]}"
        for code, text in zip(data["code"], data["description"], strict=True)
    ]
    figure = px.bar(
        data.iloc[::-1],
        x="diagnoses",
        y="label",
        orientation="h",
        labels={"diagnoses": t("analytics.axis_count", language), "label": ""},
    )
    return _layout(figure, 360)


def utilisation(frame: pd.DataFrame, language: str, _names: Mapping[str, str]) -> go.Figure:
    """Visits by weekday and hour of arrival; suppressed cells stay blank."""
    data = _shown(frame)
    grid = data.pivot_table(index="weekday", columns="hour", values="visits", aggfunc="sum")
    grid = grid.reindex(index=list(WEEKDAYS), columns=list(range(24)))
    figure = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(dtype=float, na_value=float("nan")),
            x=[f"{h:02d}" for h in grid.columns],
            y=[t(f"analytics.weekday_{d}", language) for d in grid.index],
            colorscale="Blues",
            hoverongaps=False,
        )
    )
    figure.update_layout(xaxis_title=t("analytics.axis_hour", language))
    return _layout(figure, 300)


def satisfaction(frame: pd.DataFrame, language: str, names: Mapping[str, str]) -> go.Figure:
    """Mean survey score (1-5) per month and department."""
    data = _departments(_shown(frame), names)
    figure = px.line(
        data,
        x="period",
        y="score",
        color="department",
        markers=True,
        labels={
            "period": t("analytics.axis_period", language),
            "score": t("analytics.axis_score", language),
            "department": t("analytics.axis_department", language),
        },
    )
    return _layout(figure)


def risk(frame: pd.DataFrame, language: str, names: Mapping[str, str]) -> go.Figure:
    """Patients per risk band and department, one panel per model."""
    data = _departments(_shown(frame), names)
    data["model"] = data["model_name"].map(lambda m: t(f"models.name.{m}", language))
    figure = px.bar(
        data,
        x="band",
        y="patients",
        color="department",
        facet_col="model",
        barmode="group",
        category_orders={"band": ["<10%", "10–20%", "20–30%", "≥30%"]},
        labels={
            "band": t("analytics.axis_risk_band", language),
            "patients": t("analytics.axis_patients", language),
            "department": t("analytics.axis_department", language),
        },
    )
    figure.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    return _layout(figure)


def quick_chart(frame: pd.DataFrame) -> go.Figure | None:
    """A first look at a console result: the first text column against the first number."""
    numbers = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    labels = [c for c in frame.columns if c not in numbers]
    if frame.empty or not numbers:
        return None
    x = labels[0] if labels else frame.columns[0]
    y = next(c for c in numbers if c != x) if len(numbers) > 1 or x not in numbers else None
    if y is None:
        return None
    return _layout(px.bar(frame.head(200), x=x, y=y))


FIGURES: Final[dict[str, Callable[[pd.DataFrame, str, Mapping[str, str]], go.Figure]]] = {
    "volume": volume,
    "workload": workload,
    "revenue": revenue,
    "payer_mix": payer_mix,
    "ar_aging": ar_aging,
    "wait": wait,
    "no_show_lead": no_show_lead,
    "no_show_weekday": no_show_weekday,
    "diagnoses": diagnoses,
    "utilisation": utilisation,
    "satisfaction": satisfaction,
    "risk": risk,
}
