"""The embedded CJK font: Noto Sans CJK SC from the ``noto-cjk-sans-otc`` package.

It is a pip package (requirements.txt), so a fresh clone prints every name, rare
characters such as 𠮷 included, without a system font. The collection's face 2 is the
Simplified Chinese one; fpdf2 embeds only the glyphs a document uses.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Final

SC_FACE: Final = 2  # JP, KR, SC, TC, HK, then the Mono faces


class FontMissing(RuntimeError):
    """The CJK font package is not installed (pip install -r requirements.txt)."""


@cache
def cjk_font() -> tuple[Path, int]:
    """Path of the Noto Sans CJK collection and the index of its Simplified Chinese face."""
    try:
        import noto_cjk
    except ImportError as exc:  # pragma: no cover - requirements.txt installs it
        raise FontMissing("install noto-cjk and noto-cjk-sans-otc") from exc
    try:
        path = Path(noto_cjk.otc_path("sans"))
    except noto_cjk.FontNotInstalled as exc:  # pragma: no cover
        raise FontMissing(str(exc)) from exc
    return path, SC_FACE
