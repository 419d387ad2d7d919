"""The risk-model pages through AppTest: data staff use them, other roles are refused."""

from __future__ import annotations

import pytest
from test_pages import _signed_in_page

MODELS = "pages/risk_models.py"
REPORT = "pages/risk_report.py"


def _click(at, label: str):  # type: ignore[no-untyped-def]
    [button] = [b for b in at.button if b.label == label]
    return button.click().run()


def test_data_staff_train_and_compare_versions(risk_url: str, trained: dict[str, int]) -> None:
    at = _signed_in_page(risk_url, "analyst", MODELS)
    assert not at.exception, at.exception
    assert at.title[0].value == "Risk models"
    assert not at.error
    versions = at.dataframe[0].value
    assert "Baseline AUC" in versions.columns and len(versions) >= 1
    assert "Model card" in [s.value for s in at.subheader]
    at.radio[0].set_value("lr").run()
    at = _click(at, "Train a new version")
    assert not at.exception, at.exception
    assert next(s.value for s in at.success).startswith("Trained and registered as candidate")
    assert len(at.dataframe[0].value) >= 2


def test_data_staff_run_the_report_and_export(risk_url: str, trained: dict[str, int]) -> None:
    at = _signed_in_page(risk_url, "analyst", REPORT)
    assert not at.exception, at.exception
    at.selectbox[0].set_value("booked_next_30d").run()
    at = _click(at, "Run the report")
    assert not at.exception, at.exception
    [table] = at.dataframe
    assert list(table.value.columns)[:3] == ["Rank", "MRN", "Name"]
    assert len(table.value) > 0 and table.value["MRN"].iloc[0]
    for fmt in ("csv", "xlsx", "pdf"):
        at.selectbox[1].set_value(fmt).run()
        at = _click(at, "Prepare export")
        assert not at.exception, at.exception
        assert not at.error


@pytest.mark.parametrize("username", ["registrar", "finance"])
@pytest.mark.parametrize("page", [MODELS, REPORT])
def test_other_roles_are_refused(risk_url: str, username: str, page: str) -> None:
    at = _signed_in_page(risk_url, username, page)
    assert not at.exception
    assert [e.value for e in at.error] == ["Your role is not allowed to do this."]
    assert not at.dataframe
