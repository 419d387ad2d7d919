"""HL7 v2 ORU^R01 lab results: split a file into messages, read them, build ACKs.

Parsing uses python-hl7 (``hl7``), which tolerates what real laboratory systems send
(custom encoding characters, Z-segments, escape sequences). Around it this module does
what the library leaves to the caller: MLLP framing and FHS/BHS batch wrappers are
stripped, ``\\n`` and ``\\r\\n`` segment endings become ``\\r``, and a byte file that is not
UTF-8 is read as GB 18030 (what Chinese laboratory systems commonly send).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import hl7

from cims.clock import local_zone

_MLLP_FRAMING: Final = str.maketrans("", "", "\x0b\x1c")
_WRAPPERS: Final = ("FHS", "BHS", "FTS", "BTS")
_NUMBER: Final = r"[-+]?\d+(?:\.\d+)?"
_BETWEEN: Final = re.compile(rf"^\s*({_NUMBER})\s*(?:-|–|~|to)\s*({_NUMBER})\s*$")
_ONE_SIDED: Final = re.compile(rf"^\s*(<=|>=|<|>|≤|≥)\s*({_NUMBER})\s*$")
_DTM: Final = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$")
_FLAGS: Final = {"N": "N", "H": "H", "L": "L", "HH": "HH", "LL": "LL", "A": "A", "AA": "A"}
_FLAGS_EXTRA: Final = {">": "HH", "<": "LL", "POS": "A", "NEG": "N"}
_STORED_STATUSES: Final = {"F": "F", "C": "C", "P": "P", "R": "P", "": "F"}
_MRN_TYPES: Final = ("", "MR", "MRN", "PI", "PT")
TEXT_TYPES: Final = ("ST", "TX", "FT")
CODED_TYPES: Final = ("CE", "CWE", "CNE", "CF")
_CODE_SYSTEMS: Final = {"LN": "LOINC", "LOINC": "LOINC", "SCT": "SNOMED-CT", "L": "local"}


class MessageProblem(ValueError):
    """A message that cannot be taken in: its ACK code (AE/AR), HL7 error code and reason."""

    def __init__(self, ack_code: str, error_code: str, reason: str) -> None:
        self.ack_code, self.error_code, self.reason = ack_code, error_code, reason
        super().__init__(reason)


@dataclass(frozen=True)
class Header:
    """What an ACK needs from the message it answers (MSH-3..6, 10, 11, 12)."""

    sending_app: str = ""
    sending_facility: str = ""
    receiving_app: str = ""
    receiving_facility: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = "2.5.1"

    @property
    def sender(self) -> str:
        """The sending system, the scope in which its control ids are unique."""
        return f"{self.sending_app}^{self.sending_facility}"


@dataclass(frozen=True)
class PatientRef:
    """One PID-3 repetition: identifier, assigning authority, identifier type."""

    identifier: str
    authority: str
    id_type: str

    @property
    def could_be_mrn(self) -> bool:
        """Typed as a medical record number, or untyped."""
        return self.id_type.upper() in _MRN_TYPES


@dataclass(frozen=True)
class LabResult:
    """One OBX segment, read and normalised (numbers as Decimal, time in UTC)."""

    set_id: str
    order_key: str  # OBR-3 filler order number, else OBR-2 placer, else OBR-4 + OBR-7
    order_name: str
    value_type: str
    code_system: str
    code: str
    name: str
    sub_id: str
    value_num: Decimal | None
    value_text: str | None
    unit: str | None
    ref_low: Decimal | None
    ref_high: Decimal | None
    ref_text: str | None
    flag: str | None
    status: str
    observed_at: dt.datetime | None


@dataclass(frozen=True)
class LabMessage:
    """An ORU^R01 message: header, patient identifiers and results."""

    header: Header
    patient_ids: tuple[PatientRef, ...]
    patient_name: str
    birth_date: dt.date | None
    results: tuple[LabResult, ...]
    skipped: tuple[str, ...]  # OBX segments not stored, with the reason


def split_messages(data: bytes | str) -> list[str]:
    """The messages of a file: MLLP framing and batch wrappers removed, segments ended by \\r."""
    text = data if isinstance(data, str) else _decode(data)
    text = text.lstrip("\ufeff").translate(_MLLP_FRAMING)
    segments = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    messages: list[list[str]] = []
    for raw in segments:
        segment = raw.strip(" \t")
        if not segment or segment[:3] in _WRAPPERS:
            continue
        if segment.startswith("MSH") or not messages:
            messages.append([segment])
        else:
            messages[-1].append(segment)
    return ["\r".join(segments) + "\r" for segments in messages]


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030", errors="replace")


def _field(segment: Any, field: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
    """One value of a segment (unescaped); '' where the message leaves it out."""
    try:
        value = segment.extract_field(1, field, rep, comp, sub)
    except (IndexError, KeyError):
        return ""
    return str(value).strip()


def _repetitions(segment: Any, field: int) -> int:
    if field >= len(segment):
        return 0
    return max(1, len(segment[field])) if str(segment[field]) else 0


def _header(message: Any) -> Header:
    msh = message.segment("MSH")
    return Header(
        sending_app=_field(msh, 3),
        sending_facility=_field(msh, 4),
        receiving_app=_field(msh, 5),
        receiving_facility=_field(msh, 6),
        control_id=_field(msh, 10),
        processing_id=_field(msh, 11) or "P",
        version=_field(msh, 12) or "2.5.1",
    )


def header_of(text: str) -> Header:
    """The header of a message as far as it can be read (an empty one if not at all)."""
    try:
        return _header(hl7.parse(text))
    except Exception:  # any failure here only means the ACK has less to echo
        return Header()


def parse_time(value: str) -> dt.datetime | None:
    """HL7 DTM (YYYY[MM[DD[HH[MM[SS]]]]][+ZZZZ]) as UTC; no offset means hospital time."""
    found = _DTM.match(value.strip())
    if not found:
        return None
    year, month, day, hour, minute, second, offset = found.groups()
    try:
        zone: dt.tzinfo = local_zone()
        if offset:
            sign = -1 if offset[0] == "-" else 1
            delta = dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
            zone = dt.timezone(sign * delta)
        moment = dt.datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=zone,
        )
    except ValueError:
        return None
    return moment.astimezone(dt.UTC)


def parse_range(text: str) -> tuple[Decimal | None, Decimal | None]:
    """Low and high bound of a reference range: "3.5-5.1", "<200", ">=40"; (None, None) else."""
    if found := _BETWEEN.match(text):
        return Decimal(found.group(1)), Decimal(found.group(2))
    if found := _ONE_SIDED.match(text):
        bound = Decimal(found.group(2))
        return (None, bound) if found.group(1) in ("<", "<=", "≤") else (bound, None)
    return None, None


def normalise_flag(raw: str) -> str | None:
    """OBX-8 (HL7 table 0078) as a CIMS flag: N, L, H, LL, HH or A; None if not abnormality."""
    code = raw.strip().upper()
    return _FLAGS.get(code) or _FLAGS_EXTRA.get(code)


def _number(text: str, where: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise MessageProblem("AE", "102", f"{where}: '{text}' is not a number") from None
    if not value.is_finite() or abs(value) >= Decimal("1e10"):
        raise MessageProblem("AE", "102", f"{where}: '{text}' is out of range")
    return value


def _value(obx: Any, value_type: str, where: str) -> tuple[Decimal | None, str | None]:
    """OBX-5 by its OBX-2 type: NM a number, SN a number or a comparison, CE its text."""
    first = _field(obx, 5)
    if value_type == "NM":
        if not first:
            return None, None
        if first[:1] in "<>" and first[1:2] != "=" and first[1:].strip():
            return None, first  # "<0.5": below the limit of detection, kept as written
        return _number(first, where), None
    if value_type == "SN":
        parts = [_field(obx, 5, 1, c) for c in range(1, 5)]
        comparator, low, separator, _high = parts
        if not comparator.strip("=") and not separator and low:
            return _number(low, where), None
        return None, "".join(parts) or None
    if value_type in CODED_TYPES:
        return None, _field(obx, 5, 1, 2) or first or None
    count = max(1, _repetitions(obx, 5))
    lines = [_field(obx, 5, rep) for rep in range(1, count + 1)]
    return None, "\n".join(lines).strip() or None


def _result(obx: Any, obr: Any, order_key: str, index: int) -> LabResult | str:
    """The OBX as a LabResult, or the reason it is not stored."""
    set_id = _field(obx, 1) or str(index)
    where = f"OBX {set_id}"
    status = _field(obx, 11).upper()
    if status not in _STORED_STATUSES:
        return f"{where}: result status '{status}' is not stored"
    value_type = _field(obx, 2).upper()
    code, name = _field(obx, 3), _field(obx, 3, 1, 2)
    if not code and not name:
        raise MessageProblem("AE", "101", f"{where}: OBX-3 (test) is empty")
    value_num, value_text = _value(obx, value_type, where)
    if value_num is None and not value_text:
        return f"{where}: no value"
    ref_text = _field(obx, 7) or None
    low, high = parse_range(ref_text or "")
    system = _field(obx, 3, 1, 3)
    return LabResult(
        set_id=set_id,
        order_key=order_key,
        order_name=_field(obr, 4, 1, 2) or _field(obr, 4) if obr is not None else "",
        value_type=value_type,
        code_system=_CODE_SYSTEMS.get(system.upper(), system or "local"),
        code=code or name,
        name=name or code,
        sub_id=_field(obx, 4),
        value_num=value_num,
        value_text=value_text,
        unit=_field(obx, 6) or _field(obx, 6, 1, 2) or None,
        ref_low=low,
        ref_high=high,
        ref_text=ref_text,
        flag=normalise_flag(_field(obx, 8)),
        status=_STORED_STATUSES[status],
        observed_at=parse_time(_field(obx, 14))
        or (parse_time(_field(obr, 7)) if obr is not None else None),
    )


def _order_key(obr: Any) -> str:
    return _field(obr, 3) or _field(obr, 2) or f"{_field(obr, 4)}@{_field(obr, 7)}"


def parse_oru(text: str) -> LabMessage:
    """Read one ORU^R01 message; MessageProblem says why one cannot be taken in."""
    if not text.startswith("MSH") or len(text) < 8:
        raise MessageProblem("AR", "100", "message does not start with an MSH segment")
    try:
        message = hl7.parse(text)
        header = _header(message)
    except Exception:  # the library's errors are not one type; all mean "cannot read"
        raise MessageProblem("AR", "100", "message cannot be parsed") from None
    msh = message.segment("MSH")
    kind = (_field(msh, 9), _field(msh, 9, 1, 2))
    if not header.control_id:
        raise MessageProblem("AR", "101", "MSH-10 (message control id) is empty")
    if kind[0] != "ORU" or kind[1] not in ("R01", ""):
        raise MessageProblem("AR", "200", f"message type {'^'.join(kind)} is not ORU^R01")
    pids = [s for s in message if str(s[0]) == "PID"]
    if not pids:
        raise MessageProblem("AE", "100", "no PID segment")
    pid = pids[0]
    refs = tuple(
        PatientRef(_field(pid, 3, rep), _field(pid, 3, rep, 4), _field(pid, 3, rep, 5))
        for rep in range(1, _repetitions(pid, 3) + 1)
        if _field(pid, 3, rep)
    ) or ((PatientRef(_field(pid, 2), "", ""),) if _field(pid, 2) else ())
    if not refs:
        raise MessageProblem("AE", "101", "PID-3 (patient identifier) is empty")
    birth = parse_time(_field(pid, 7)[:8]) if len(_field(pid, 7)) >= 8 else None
    obr: Any = None
    order_key = ""
    results: list[LabResult] = []
    skipped: list[str] = []
    for segment in message:
        kind_of = str(segment[0])
        if kind_of == "OBR":
            obr, order_key = segment, _order_key(segment)
        elif kind_of == "OBX":
            found = _result(segment, obr, order_key, len(results) + len(skipped) + 1)
            if isinstance(found, str):
                skipped.append(found)
            else:
                results.append(found)
    if not results:
        raise MessageProblem("AE", "101", "no result (OBX) to store" + _because(skipped))
    name = " ".join(p for p in (_field(pid, 5), _field(pid, 5, 1, 2)) if p)
    return LabMessage(
        header=header,
        patient_ids=refs,
        patient_name=name,
        birth_date=birth.astimezone(local_zone()).date() if birth else None,
        results=tuple(results),
        skipped=tuple(skipped),
    )


def _because(skipped: list[str]) -> str:
    return f" ({'; '.join(skipped[:3])})" if skipped else ""


def _escape(text: str) -> str:
    """Text safe inside an ACK field (HL7 escape sequences for the delimiters)."""
    out = text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
    out = out.replace("&", "\\T\\").replace("~", "\\R\\")
    return " ".join(out.split())


def build_ack(
    header: Header,
    ack_code: str,
    *,
    reason: str | None = None,
    error_code: str = "207",
    now: dt.datetime | None = None,
    application: str = "CIMS",
) -> str:
    """An HL7 ACK for ``header``'s message: MSH, MSA (AA/AE/AR), and ERR when refused."""
    stamp = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y%m%d%H%M%S+0000")
    msh = "|".join(
        (
            "MSH",
            "^~\\&",
            application,
            _escape(header.receiving_facility),
            _escape(header.sending_app),
            _escape(header.sending_facility),
            stamp,
            "",
            "ACK^R01^ACK",
            uuid.uuid4().hex[:20].upper(),
            _escape(header.processing_id),
            _escape(header.version),
        )
    )
    text = _escape(reason or "")
    segments = [msh, "|".join(("MSA", ack_code, _escape(header.control_id), text)).rstrip("|")]
    if ack_code != "AA":
        segments.append(
            f"ERR|||{error_code}^{_ERROR_NAMES.get(error_code, '')}^HL70357|E||||{text}"
        )
    return "\r".join(segments) + "\r"


_ERROR_NAMES: Final = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "200": "Unsupported message type",
    "204": "Unknown key identifier",
    "207": "Application internal error",
}
