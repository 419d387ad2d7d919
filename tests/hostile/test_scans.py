"""The dependency audit's verdict: fail on findings, say plainly when nothing was checked."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("audit_deps", ROOT / "scripts" / "audit_deps.py")
assert _spec and _spec.loader
audit_deps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(audit_deps)


def _report(*dependencies: dict[str, object]) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def test_a_network_error_is_reported_as_skipped_not_as_clean() -> None:
    log = "requests.exceptions.ConnectionError: Max retries exceeded with url: /pypi/x/json"
    assert audit_deps.verdict(1, "", log) == (0, audit_deps.SKIPPED)


def test_nothing_looked_up_is_skipped() -> None:
    report = _report({"name": "a", "skip_reason": "Dependency not found on PyPI"})
    code, message = audit_deps.verdict(0, report, "")
    assert code == 0 and message.startswith(audit_deps.SKIPPED)


def test_a_known_vulnerability_fails() -> None:
    report = _report(
        {"name": "a", "version": "1.0", "vulns": [{"id": "PYSEC-1", "fix_versions": ["1.1"]}]},
        {"name": "b", "version": "2.0", "vulns": []},
    )
    code, message = audit_deps.verdict(1, report, "")
    assert code == 1 and "a 1.0: PYSEC-1" in message


def test_a_clean_audit_passes_and_counts() -> None:
    report = _report(
        {"name": "a", "version": "1.0", "vulns": []}, {"name": "b", "skip_reason": "x"}
    )
    assert audit_deps.verdict(0, report, "") == (
        0,
        "pip-audit: 1 packages audited, 1 not found, no known vulnerabilities",
    )


def test_an_unexplained_failure_fails() -> None:
    code, _ = audit_deps.verdict(2, "", "usage: pip-audit: bad option")
    assert code == 1
