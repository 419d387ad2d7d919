"""Static checks of the UI code (ast): no raw HTML built from data, no shared patient caches.

Streamlit escapes what st.text/st.markdown/st.dataframe show, except where a call passes
``unsafe_allow_html=True`` (or uses st.html / components.html). Those may only render
constant strings, or a format whose every hole is listed below with a reason.
``st.cache_data`` and ``st.cache_resource`` are shared by every user of the process: a
cached function may hold patient data only when its arguments (the cache key) include the
user; every cached function is listed here with what it holds.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UI_FILES = sorted(
    [*ROOT.glob("pages/*.py"), *ROOT.glob("ui/**/*.py"), ROOT / "app.py", ROOT / "server.py"]
)
RAW_HTML_CALLS = {"html"}  # st.html(...), components.html(...)

# (file, formatted name) -> why the value is safe inside raw HTML. Empty: no page builds
# HTML from data today; add an entry only with a reason (escaped, or a fixed vocabulary).
ALLOWED_HTML_HOLES: dict[tuple[str, str], str] = {}

# (file, function) -> what the cache holds and why it is no patient's data.
CACHED_WITHOUT_USER_KEY: dict[tuple[str, str], str] = {
    ("pages/manager_dashboard.py", "_frames"): "de-identified aggregates of the analytics "
    "snapshot (groups under 5 suppressed); keyed by snapshot file, mtime and filters",
    ("pages/manager_dashboard.py", "_names"): "department names from the snapshot",
    ("ui/jobs.py", "start_background_jobs"): "a flag that the process started its jobs",
}
USER_KEYS = {"actor", "user_id", "username", "user", "session_id"}
# Modules whose functions return identified patient data.
PATIENT_MODULES = (
    "cims.patients",
    "cims.records",
    "cims.engagement",
    "cims.billing",
    "cims.portal",
    "cims.appointments",
    "cims.printables",
    "cims.interop",
)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _trees() -> list[tuple[str, ast.Module]]:
    return [(_rel(p), ast.parse(p.read_text("utf-8"), filename=str(p))) for p in UI_FILES]


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _raw_html_calls(tree: ast.Module) -> list[ast.Call]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        unsafe = any(
            k.arg == "unsafe_allow_html"
            and not (isinstance(k.value, ast.Constant) and k.value.value is False)
            for k in node.keywords
        )
        if unsafe or _call_name(node) in RAW_HTML_CALLS:
            found.append(node)
    return found


def _holes(call: ast.Call) -> list[str]:
    """The non-constant parts of a raw-HTML call's body argument, by source text."""
    if not call.args:
        return ["<no positional body>"]
    body = call.args[0]
    if isinstance(body, ast.Constant) and isinstance(body.value, str):
        return []
    if isinstance(body, ast.JoinedStr):
        return [
            ast.unparse(part.value) for part in body.values if isinstance(part, ast.FormattedValue)
        ]
    return [ast.unparse(body)]


def test_raw_html_only_from_constants_or_listed_holes() -> None:
    unlisted = []
    for name, tree in _trees():
        for call in _raw_html_calls(tree):
            for hole in _holes(call):
                if (name, hole) not in ALLOWED_HTML_HOLES:
                    unlisted.append(f"{name}:{call.lineno} {hole}")
    assert unlisted == [], "raw HTML built from data:\n" + "\n".join(unlisted)


def test_the_raw_html_check_catches_data() -> None:
    """The check itself: an f-string hole or a variable in unsafe HTML is reported."""
    source = (
        "st.markdown(f'<b>{patient.name}</b>', unsafe_allow_html=True)\n"
        "st.markdown(note, unsafe_allow_html=True)\n"
        "st.html(text)\n"
        "st.markdown('<hr>', unsafe_allow_html=True)\n"
        "st.markdown(note, unsafe_allow_html=False)\n"
    )
    calls = _raw_html_calls(ast.parse(source))
    assert [h for c in calls for h in _holes(c)] == ["patient.name", "note", "text"]


def _cache_kind(decorator: ast.expr) -> str | None:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(target, ast.Attribute) and target.attr in ("cache_data", "cache_resource"):
        return target.attr
    return None


def _patient_imports(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PATIENT_MODULES):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _cached_functions() -> dict[tuple[str, str], tuple[set[str], set[str]]]:
    """(file, function) -> (its parameter names, patient-data names its body uses)."""
    found = {}
    for name, tree in _trees():
        patient_names = _patient_imports(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
                _cache_kind(d) for d in node.decorator_list
            ):
                args = node.args
                params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
                used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                found[(name, node.name)] = (params, used & patient_names)
    return found


def test_every_cache_is_listed_and_none_holds_patient_data_without_a_user_key() -> None:
    cached = _cached_functions()
    without_user = {key for key, (params, _) in cached.items() if not params & USER_KEYS}
    assert without_user == set(CACHED_WITHOUT_USER_KEY), (
        "a st.cache_data/st.cache_resource function without the user in its key is new or "
        f"gone; review what it holds and update the list: {sorted(without_user)}"
    )
    for key in without_user:
        _, patient_calls = cached[key]
        assert not patient_calls, f"{key} calls patient-data services {patient_calls}"


def test_the_cache_check_sees_patient_services() -> None:
    source = (
        "from cims.patients.service import get_patient\n"
        "@st.cache_data(ttl=60)\n"
        "def load(patient_id):\n"
        "    return get_patient(patient_id=patient_id)\n"
    )
    tree = ast.parse(source)
    [function] = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert _cache_kind(function.decorator_list[0]) == "cache_data"
    assert _patient_imports(tree) == {"get_patient"}


# Attributes that hold text a user typed (names, notes, messages, reasons).
USER_TEXT = {
    "title", "text", "body", "reason", "full_name", "first_line", "sender_name", "subject",
    "comment", "goals", "description", "name", "patient_name", "chief_complaint",
}  # fmt: skip
MARKDOWN_CALLS = {"markdown", "write", "caption", "info", "warning", "error", "success",
                  "subheader", "header", "title", "toast"}  # fmt: skip
# (file, hole) -> why it may show without plain(): not typed by a user of the page.
MARKDOWN_HOLES_ALLOWED: dict[tuple[str, str], str] = {
    ("pages/admin_backups.py", "entry.name"): "backup file names are generated by CIMS "
    "(cims-<timestamp>.cimsbak), never typed",
}


def _user_text_holes(call: ast.Call) -> list[str]:
    """Holes of a markdown-rendering call that show user text without ``plain(...)``."""
    found = []
    for arg in call.args[:1]:
        parts = arg.values if isinstance(arg, ast.JoinedStr) else [arg]
        for part in parts:
            value = part.value if isinstance(part, ast.FormattedValue) else part
            if isinstance(value, ast.Attribute) and value.attr in USER_TEXT:
                found.append(ast.unparse(value))
    return found


def test_user_text_in_markdown_is_escaped_with_plain() -> None:
    unescaped = []
    for name, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _call_name(node) in MARKDOWN_CALLS:
                for hole in _user_text_holes(node):
                    if (name, hole) not in MARKDOWN_HOLES_ALLOWED:
                        unescaped.append(f"{name}:{node.lineno} {hole}")
    assert unescaped == [], "user text rendered as markdown:\n" + "\n".join(unescaped)


def test_the_markdown_check_catches_raw_user_text() -> None:
    source = "st.markdown(f'**{note.title}**')\nst.write(item.body)\nst.caption(plain(x.reason))\n"
    calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)]
    assert [h for c in calls if _call_name(c) in MARKDOWN_CALLS for h in _user_text_holes(c)] == [
        "note.title",
        "item.body",
    ]
