"""Logs are JSON lines for operators and never carry patient data."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging

from sqlalchemy.orm import Session

import factories
from cims.logs import configure_logging
from cims.patients.resident_id import check_digit
from cims.patients.schemas import PatientInput
from cims.patients.search import search_patients
from cims.patients.service import register_patient


def test_log_lines_are_json_without_exception_messages() -> None:
    stream = io.StringIO()
    handler = configure_logging("DEBUG", stream)
    try:
        log = logging.getLogger("cims.test")
        log.info("job %s succeeded", "backup", extra={"job": "backup", "rows": 3})
        try:
            raise ValueError("duplicate key value (national_id)=(110101198503120018) 张三")
        except ValueError:
            log.exception("unexpected error (reference %s)", "ab12")
    finally:
        logging.getLogger("cims").removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["msg"] == "job backup succeeded" and lines[0]["extra"]["rows"] == 3
    assert lines[1]["error"] == "ValueError" and lines[1]["where"]
    assert "110101198503120018" not in stream.getvalue() and "张三" not in stream.getvalue()


def test_registering_and_finding_a_patient_logs_nothing_about_them(session: Session) -> None:
    stream = io.StringIO()
    handler = configure_logging("DEBUG", stream)
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.DEBUG)
    first17 = "110101" + "19850312" + "778"  # even sequence: female
    national_id = first17 + check_digit(first17)
    try:
        desk = factories.actor(session, "registrar")
        register_patient(
            session=session,
            actor=desk,
            data=PatientInput(
                family_name="欧阳",
                given_name="娜娜",
                sex="F",
                birth_date=dt.date(1985, 3, 12),
                national_id=national_id,
                mobile="13912345670",
                insurance_type="self_pay",
            ),
            confirm_not_duplicate=True,
            today=dt.date(2026, 11, 26),
        )
        search_patients(session=session, actor=desk, query="13912345670")
        search_patients(session=session, actor=desk, query="欧阳娜娜")
    finally:
        logging.getLogger("cims").removeHandler(handler)
        root.setLevel(previous)
    text = stream.getvalue()
    for value in (national_id, "13912345670", "欧阳", "娜娜"):
        assert value not in text
