"""Structured JSON logs that never carry patient data.

Log lines are for operators: what happened, where, how it ended. Patient facts belong in
the audit log (who did what to which record), never here. Exception *messages* are left out
on purpose — a database error's message can quote the values it choked on — and only the
exception's type and the code locations of its traceback are kept.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import traceback
from typing import Any, Final

ROOT_LOGGER: Final = "cims"
_FIELDS_SKIPPED: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, process, and error type."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` without exception messages or stack locals."""
        data: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info and record.exc_info[0] is not None:
            error, _, tb = record.exc_info
            data["error"] = error.__name__
            data["where"] = [
                f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno} {frame.name}"
                for frame in traceback.extract_tb(tb)[-6:]
            ]
        extra = {k: v for k, v in vars(record).items() if k not in _FIELDS_SKIPPED}
        extra.pop("message", None)
        if extra:
            data["extra"] = {
                k: v if isinstance(v, int | float | bool) else str(v) for k, v in extra.items()
            }
        return json.dumps(data, ensure_ascii=False)


def configure_logging(level: str = "INFO", stream: Any = None) -> logging.Handler:
    """Send the ``cims`` loggers to one JSON handler (idempotent; returns the handler)."""
    logger = logging.getLogger(ROOT_LOGGER)
    for handler in list(logger.handlers):
        if getattr(handler, "cims_json", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.cims_json = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler
