"""Reading HL7 v2 text: framing, separators, ranges, flags, times, ACKs (no database)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cims.interop.hl7_parse import (
    Header,
    MessageProblem,
    build_ack,
    normalise_flag,
    parse_oru,
    parse_range,
    parse_time,
    split_messages,
)

MESSAGE = (
    "MSH|^~\\&|LIS|LAB|CIMS|HOSP|20261120091500||ORU^R01|C-1|P|2.5.1\r"
    "PID|1||0007700016^^^HOSP^MR\r"
    "OBR|1||F-1|2345-7^Glucose^LN\r"
    "OBX|1|NM|2345-7^Glucose^LN||5.2|mmol/L|3.9-6.1|N|||F\r"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3.5-5.1", (Decimal("3.5"), Decimal("5.1"))),
        (" 3.5 - 5.1 ", (Decimal("3.5"), Decimal("5.1"))),
        ("-2.0-3.0", (Decimal("-2.0"), Decimal("3.0"))),
        ("<200", (None, Decimal("200"))),
        ("<=5.2", (None, Decimal("5.2"))),
        (">40", (Decimal("40"), None)),
        ("≥1.0", (Decimal("1.0"), None)),
        ("Negative", (None, None)),
        ("", (None, None)),
    ],
)
def test_reference_ranges(text: str, expected: tuple[Decimal | None, Decimal | None]) -> None:
    assert parse_range(text) == expected


@pytest.mark.parametrize(
    ("raw", "flag"),
    [("H", "H"), ("l", "L"), ("HH", "HH"), ("LL", "LL"), ("A", "A"), ("AA", "A"), ("N", "N"),
     (">", "HH"), ("", None), ("D", None)],
)  # fmt: skip
def test_abnormal_flags(raw: str, flag: str | None) -> None:
    assert normalise_flag(raw) == flag


def test_times_with_and_without_offset() -> None:
    assert parse_time("20261120083000+0800") == dt.datetime(2026, 11, 20, 0, 30, tzinfo=dt.UTC)
    assert parse_time("202611200830-0500") == dt.datetime(2026, 11, 20, 13, 30, tzinfo=dt.UTC)
    # No offset: hospital time (Asia/Shanghai by default).
    assert parse_time("20261120083000.1234") == dt.datetime(2026, 11, 20, 0, 30, tzinfo=dt.UTC)
    assert parse_time("20261120") == dt.datetime(2026, 11, 19, 16, 0, tzinfo=dt.UTC)
    assert parse_time("2026-11-20") is None and parse_time("20261340") is None


def test_split_strips_mllp_and_batch_wrappers_and_any_line_ending() -> None:
    body = MESSAGE.replace("\r", "\r\n")
    second = MESSAGE.replace("C-1", "C-2")
    data = f"FHS|^~\\&\rBHS|^~\\&\n\x0b{body}\x1c\r\x0b{second}\x1c\rBTS|2\rFTS|1"
    messages = split_messages(data.encode())
    assert len(messages) == 2
    assert all(m.startswith("MSH|") and m.count("\r") == 4 and "\n" not in m for m in messages)
    assert [parse_oru(m).header.control_id for m in messages] == ["C-1", "C-2"]


def test_other_encoding_characters_and_escapes() -> None:
    text = (
        "MSH|#!$*|LIS|LAB|CIMS|HOSP|20261120091500||ORU#R01|C-9|P|2.5.1\r"
        "PID|1||X1!0007700016###HOSP#MR\r"
        "OBR|1||F-1|2345-7#Glucose#LN\r"
        "OBX|1|NM|2345-7#Glucose#LN||5.2|mmol/L|3.9-6.1|N|||F\r"
        "OBX|2|ST|8251-1#Comment#LN||a $T$ b $F$ c||||||F\r"
    )
    message = parse_oru(text)
    assert [ref.identifier for ref in message.patient_ids] == ["X1", "0007700016"]
    assert message.patient_ids[1].could_be_mrn and message.patient_ids[1].authority == "HOSP"
    glucose, comment = message.results
    assert (glucose.code, glucose.name, glucose.unit) == ("2345-7", "Glucose", "mmol/L")
    assert (comment.name, comment.value_text) == ("Comment", "a * b | c")


@pytest.mark.parametrize(
    ("text", "ack", "error"),
    [
        ("PID|1||x\r", "AR", "100"),
        (MESSAGE.replace("|C-1|", "||"), "AR", "101"),
        (MESSAGE.replace("ORU^R01", "ADT^A08"), "AR", "200"),
        (MESSAGE.replace("PID|", "ZID|"), "AE", "100"),
        (MESSAGE.replace("0007700016^^^HOSP^MR", ""), "AE", "101"),
        (MESSAGE.replace("|5.2|", "|high|"), "AE", "102"),
        (MESSAGE.replace("|5.2|", "|1e12|"), "AE", "102"),
        (MESSAGE.replace("|F\r", "|X\r"), "AE", "101"),  # its only result "cannot be obtained"
    ],
)
def test_messages_that_cannot_be_taken_in(text: str, ack: str, error: str) -> None:
    with pytest.raises(MessageProblem) as refused:
        parse_oru(split_messages(text)[0])
    assert (refused.value.ack_code, refused.value.error_code) == (ack, error)


def test_ack_echoes_the_control_id_and_escapes_the_reason() -> None:
    header = Header("LIS", "LAB", "CIMS", "HOSP", "C|1", "P", "2.3")
    ack = build_ack(header, "AE", reason="bad | value ^ here", error_code="102")
    msh, msa, err = ack.rstrip("\r").split("\r")
    assert msh.startswith("MSH|^~\\&|CIMS|HOSP|LIS|LAB|") and msh.endswith("|P|2.3")
    assert msa == "MSA|AE|C\\F\\1|bad \\F\\ value \\S\\ here"
    assert err.startswith("ERR|||102^Data type error^HL70357|E||||")
    assert build_ack(header, "AA").rstrip("\r").split("\r")[1] == "MSA|AA|C\\F\\1"
