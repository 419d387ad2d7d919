"""KPI definitions, filters and small-group suppression on a tiny hand-made snapshot."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from analytics import charts
from analytics.queries import (
    SUPPRESSED,
    Filters,
    _kpi_values,
    dashboard_frames,
    display_table,
    kpis,
    top_diagnoses,
)
from analytics.snapshot import connect

JANUARY = Filters(dt.date(2026, 1, 1), dt.date(2026, 1, 31))


def test_every_kpi_matches_the_hand_computed_value(tiny_snapshot: Path) -> None:
    with connect(tiny_snapshot) as con:
        values = _kpi_values(con, JANUARY)
    assert values["visits"] == 7 and values["admissions"] == 3 and values["patients"] == 6
    assert values["revenue"] == pytest.approx(100 + 1000 + 50.50)
    # Succeeded 40 + partly refunded (200 - 50); failed and pending are not collected.
    assert values["collections"] == pytest.approx(190.0)
    # Open balances of invoices issued by 31 Jan: 50.50 + (200 - 150); February's not yet.
    assert values["outstanding"] == pytest.approx(100.50)
    assert values["avg_wait_min"] == pytest.approx((20 + 30) / 2)
    assert values["avg_lead_days"] == pytest.approx((4 + 2 / 24 + 5) / 3)  # cancelled left out
    assert values["no_show_rate"] == pytest.approx(1 / 3)
    assert values["alos_days"] == pytest.approx((4 + 2 + 3) / 3)
    # Three January discharges; the first is followed by a readmission 14 days later.
    assert values["readmission_rate"] == pytest.approx(1 / 3)
    assert values["satisfaction"] == pytest.approx((4.5 + 3.0 + 4.0) / 3)
    assert values["nps"] == pytest.approx(100 * (2 - 1) / 3)


def test_period_over_period_change(tiny_snapshot: Path) -> None:
    with connect(tiny_snapshot) as con:
        frame = kpis(con, JANUARY).set_index("kpi")
    assert frame.loc["visits", "previous"] == 3
    assert frame.loc["visits", "change"] == pytest.approx(7 / 3 - 1)
    assert frame.loc["alos_days", "change"] == pytest.approx(3 / 2 - 1)
    assert pd.isna(frame.loc["collections", "change"])  # nothing collected in December
    assert not frame["suppressed"].any()


def test_filters_change_the_numbers(tiny_snapshot: Path) -> None:
    with connect(tiny_snapshot) as con:
        cardiology = _kpi_values(con, Filters(JANUARY.start, JANUARY.end, ("CARD",)))
        outpatient = _kpi_values(con, Filters(JANUARY.start, JANUARY.end, (), ("outpatient",)))
        inpatient = _kpi_values(con, Filters(JANUARY.start, JANUARY.end, (), ("inpatient",)))
        first_week = _kpi_values(con, Filters(dt.date(2026, 1, 1), dt.date(2026, 1, 7)))
    assert cardiology["visits"] == 4 and cardiology["revenue"] == pytest.approx(1100)
    assert cardiology["no_show_rate"] == 0 and cardiology["readmission_rate"] == pytest.approx(0.5)
    assert outpatient["visits"] == 3 and outpatient["revenue"] == pytest.approx(150.50)
    assert inpatient["visits"] == 3 and inpatient["no_show_rate"] is None  # no bookings
    assert first_week["visits"] == 4 and first_week["alos_days"] == pytest.approx(4)


def test_small_groups_are_suppressed(tiny_snapshot: Path) -> None:
    with connect(tiny_snapshot) as con:
        small = kpis(con, Filters(JANUARY.start, JANUARY.end, ("CARD",)))  # 3 patients
        diagnoses = top_diagnoses(con, JANUARY)  # I10 for 2 patients
    assert small["suppressed"].all() and small["value"].isna().all()
    assert bool(diagnoses.loc[0, "suppressed"]) and pd.isna(diagnoses.loc[0, "diagnoses"])
    shown = display_table(diagnoses)
    assert list(shown["patients"]) == [SUPPRESSED] and "suppressed" not in shown.columns


def test_every_chart_draws_in_both_languages(tiny_snapshot: Path) -> None:
    names = {"CARD": "Cardiology", "ENDO": "Endocrinology"}
    with connect(tiny_snapshot) as con:
        frames = dashboard_frames(con, JANUARY)
    for language in ("zh", "en"):
        for name, figure in charts.FIGURES.items():
            assert figure(frames[name], language, names) is not None, name
    assert charts.quick_chart(pd.DataFrame({"dept": ["A", "B"], "n": [1, 2]})) is not None
