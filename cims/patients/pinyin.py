"""Pinyin initials of Chinese names: the search key that lets `zs` find 张三."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Final

from pypinyin import Style, lazy_pinyin

# Surname readings differ from the everyday reading pypinyin picks for a lone character
# (曾 zeng not ceng, 单 shan not dan, ...); these apply only at the start of a name.
_SURNAME_INITIALS: Final[dict[str, str]] = {
    "曾": "z", "单": "s", "仇": "q", "解": "x", "查": "z", "朴": "p", "盖": "g", "区": "o",
    "乐": "y", "覃": "q", "翟": "z", "缪": "m", "召": "s", "员": "y", "种": "c", "重": "c",
    "万俟": "mq", "尉迟": "yc", "单于": "cy", "长孙": "zs",
}  # fmt: skip
# Characters pypinyin has no reading for; 𠮷 is the well-known variant of 吉 (ji).
_CHAR_INITIALS: Final[dict[str, str]] = {"𠮷": "j"}


def _no_reading(_: str) -> str:
    """Drop characters pypinyin has no reading for (its ``errors`` callback)."""
    return ""


@functools.cache
def _char_initial(ch: str) -> str:
    """Lowercase pinyin initial of one character ("" for punctuation, spaces, unknowns)."""
    if ch in _CHAR_INITIALS:
        return _CHAR_INITIALS[ch]
    if ch.isascii():
        return ch.lower() if ch.isalnum() else ""
    return "".join(lazy_pinyin(ch, style=Style.FIRST_LETTER, errors=_no_reading)).lower()


def _name_initials(name: str) -> str:
    """Return initials of one full name, honouring surname readings of its leading characters."""
    name = name.strip()
    for length in (2, 1):
        head = name[:length]
        if len(head) == length and head in _SURNAME_INITIALS:
            return _SURNAME_INITIALS[head] + "".join(map(_char_initial, name[length:]))
    return "".join(map(_char_initial, name))


def pinyin_initials(names: Iterable[str]) -> list[str]:
    """Lowercase pinyin initials of full names, e.g. 张三 -> "zs" (cached per character)."""
    return [_name_initials(name) for name in names]
