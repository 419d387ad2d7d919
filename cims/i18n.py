"""One translation function for every UI string, in Simplified Chinese and English."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

LANGUAGES = {"zh": "简体中文", "en": "English"}
DEFAULT_LANGUAGE = "zh"
_LOCALES = Path(__file__).resolve().parent / "locales"


@cache
def catalog(language: str) -> dict[str, str]:
    """All strings of one language, keyed by dotted message keys."""
    data: dict[str, str] = json.loads((_LOCALES / f"{language}.json").read_text("utf-8"))
    return data


def t(key: str, language: str = DEFAULT_LANGUAGE, /, **params: Any) -> str:
    """The message ``key`` in ``language`` with ``{params}`` filled in.

    A missing key shows as the key itself (a test keeps both catalogs complete).
    """
    text = catalog(language if language in LANGUAGES else DEFAULT_LANGUAGE).get(key, key)
    return text.format(**params) if params else text
