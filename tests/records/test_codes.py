"""Clinical codes: the WHO ICD-10 load, a hospital's own CSV, and the search box."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

import factories
from cims.records.codes import (
    InvalidCodeFile,
    chinese_initials,
    find_code,
    import_codes,
    load_who_icd10,
    search_codes,
)
from cims.records.models import ClinicalCode
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied


@pytest.fixture(scope="module")
def icd10(engine: Engine) -> Iterator[None]:
    """The WHO list committed once (reference data; loading is idempotent)."""
    with Session(engine) as db:
        load_who_icd10(db)
        db.commit()
    yield


def _codes(session: Session, query: str, **kwargs: object) -> list[str]:
    doctor = factories.actor(session, "doctor")
    return [h.code for h in search_codes(session=session, actor=doctor, query=query, **kwargs)]


def test_who_list_is_loaded_with_parents_and_leaves(session: Session, icd10: None) -> None:
    count = session.scalar(select(func.count()).where(ClinicalCode.source == "who-icd10"))
    assert count is not None and count > 10_000
    e11 = session.scalar(select(ClinicalCode).where(ClinicalCode.code == "E11"))
    e119 = session.scalar(select(ClinicalCode).where(ClinicalCode.code == "E11.9"))
    assert e11 is not None and e119 is not None
    assert not e11.is_leaf and e119.is_leaf and e119.parent_code == "E11"
    assert e11.parent_code is None  # blocks and chapters are navigation, not codes
    hypertension = find_code(session, "i10")
    assert hypertension is not None
    assert hypertension.title_zh == "原发性高血压"
    assert hypertension.description == "原发性高血压 / Essential (primary) hypertension"
    # A demo code outside the WHO list (ICD-10-CM) is there with its demo titles.
    assert find_code(session, "E11.65") is not None
    # Loading again changes nothing.
    load_who_icd10(session)
    again = session.scalar(select(func.count()).where(ClinicalCode.source == "who-icd10"))
    assert again == count


def test_search_ranks_exact_code_then_prefix_then_words(session: Session, icd10: None) -> None:
    found = _codes(session, "I10")
    assert found[0] == "I10"
    assert _codes(session, "e11")[:3] == ["E11", "E11.0", "E11.1"]
    assert _codes(session, "E119")[0] == "E11.9"  # the dot may be left out
    assert "I10" in _codes(session, "essential hypertension")
    assert "J45.9" in _codes(session, "asthma")


def test_search_in_chinese_and_pinyin_initials(session: Session, icd10: None) -> None:
    assert chinese_initials("原发性高血压") == "yfxgxy"
    assert "I10" in _codes(session, "高血压")
    assert _codes(session, "yfxgxy") == ["I10"]
    assert "E11.9" in _codes(session, "糖尿病")


def test_search_is_reference_data_but_privileged(session: Session, icd10: None) -> None:
    before = session.scalar(select(func.max(AuditEvent.id)))
    assert _codes(session, "") == []
    assert _codes(session, "E_1") == []  # LIKE wildcards are matched literally
    assert "T31.0" in _codes(session, "10%")
    assert len(_codes(session, "a", limit=5)) == 5
    assert session.scalar(select(func.max(AuditEvent.id))) == before
    with pytest.raises(AccessDenied):
        search_codes(session=session, actor=factories.actor(session, "registrar"), query="I10")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hospital_icd.csv"
    path.write_text(text, "utf-8")
    return path


def test_import_of_chinese_clinical_edition(session: Session, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "code,title_zh,title_en,parent_code\n"
        "I10.x00,原发性高血压,Essential hypertension,\n"
        "I10.x00x002,高血压病1级,Hypertension grade 1,I10.x00\n"
        "E11.900,2型糖尿病不伴有并发症,,\n",
    )
    report = import_codes(session, path)
    assert report.rows == 3 and report.source == "import:hospital_icd.csv"
    row = session.scalar(select(ClinicalCode).where(ClinicalCode.code == "I10.x00"))
    assert row is not None and not row.is_leaf and row.source == "import:hospital_icd.csv"
    assert (
        "gxyb1j"
        in session.scalars(
            select(ClinicalCode.search_text).where(ClinicalCode.code == "I10.x00x002")
        ).one()
    )
    assert _codes(session, "i10.x00")[0] == "I10.x00"
    assert _codes(session, "2型糖尿病 并发症") == ["E11.900"]  # every word must match
    # The same file again updates instead of duplicating.
    import_codes(session, path)
    assert (
        session.scalar(select(func.count()).where(ClinicalCode.source == "import:hospital_icd.csv"))
        == 3
    )


def test_a_file_with_one_bad_row_imports_nothing(session: Session, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "code,title_zh,title_en\n"
        "K35.800,急性阑尾炎,Acute appendicitis\n"
        "not a code,坏行,Bad row\n"
        "K35.800,重复,Duplicate\n"
        "K80.200,,\n",
    )
    with pytest.raises(InvalidCodeFile) as refused:
        import_codes(session, path)
    assert refused.value.problems == [
        (3, "codes.bad_code"),
        (4, "codes.duplicate_code"),
        (5, "codes.missing_title"),
    ]
    assert session.scalar(select(ClinicalCode.id).where(ClinicalCode.code == "K35.800")) is None
    header = _write(tmp_path, "code;name\nI10;x\n")
    with pytest.raises(InvalidCodeFile) as bad_header:
        import_codes(session, header)
    assert bad_header.value.problems == [(1, "codes.bad_header")]


def test_other_code_systems_keep_their_own_codes(session: Session, tmp_path: Path) -> None:
    path = _write(tmp_path, "code,title_zh,title_en\n44054006,2型糖尿病,Diabetes mellitus type 2\n")
    import_codes(session, path, code_system="SNOMED-CT")
    assert _codes(session, "44054006", code_system="SNOMED-CT") == ["44054006"]
    assert _codes(session, "44054006") == []


def test_cli_import_reports_bad_lines(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cims.cli import app

    monkeypatch.setenv("CIMS_DATABASE_URL", database_url)
    bad = _write(tmp_path, "code,title_zh,title_en\nZZ,坏,bad\n")
    result = CliRunner().invoke(app, ["import", "codes", str(bad)])
    assert result.exit_code == 1
    assert "line 2" in result.output
    good = _write(tmp_path, "code,title_zh,title_en\nCLI-1,测试编码,Test code\n")
    result = CliRunner().invoke(app, ["import", "codes", str(good), "--system", "TEST-CLI"])
    assert result.exit_code == 0, result.output
    assert "imported 1 TEST-CLI codes" in result.output
    help_text = CliRunner().invoke(app, ["import", "codes", "--help"])
    assert help_text.exit_code == 0 and "--system" in help_text.output
