"""The benchmark runner: last-line parsing, storing, running a script, rendering RESULTS.md."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import time
from pathlib import Path
from types import ModuleType

import pytest

RUNNER = Path(__file__).resolve().parents[2] / "bench" / "_run_all.py"
MACHINE = {
    "cpu_count": 2,
    "cpu_model": "Test CPU",
    "ram_gb": 8.0,
    "os": "Debian, Linux 6",
    "python": "3.11.9",
    "postgresql": "16.2",
}


@pytest.fixture(scope="module")
def runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run_all", RUNNER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_last_non_empty_line_is_the_result(runner: ModuleType) -> None:
    out = 'progress\n{"bench": "old"}\n{"bench": "x", "speedup_vs_naive": 3.1}\n\n'
    assert runner.last_json(out) == {"bench": "x", "speedup_vs_naive": 3.1}


@pytest.mark.parametrize(
    "out",
    ["", "\n\n", '{"bench": "x"}\ndone', '{"speedup": 2}', "[1, 2]", "{not json"],
)
def test_a_missing_or_malformed_last_line_is_refused(runner: ModuleType, out: str) -> None:
    with pytest.raises(ValueError):
        runner.last_json(out)


def _script(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(body)


def test_a_script_is_run_and_its_json_line_captured(runner: ModuleType, tmp_path: Path) -> None:
    _script(
        tmp_path,
        "fake",
        "import json, sys\nprint('working', file=sys.stderr)\nprint('step')\n"
        "print(json.dumps({'bench': 'fake', 'n': len(sys.argv) - 1}))\n",
    )
    record = runner.run_one(
        "fake", ["--a", "1"], env=dict(os.environ), timeout=60, bench_dir=tmp_path
    )
    assert record["result"] == {"bench": "fake", "n": 2}
    assert record["args"] == ["--a", "1"] and record["returncode"] == 0
    assert "error" not in record


def test_a_failing_or_hanging_script_is_an_error(runner: ModuleType, tmp_path: Path) -> None:
    _script(
        tmp_path, "broken", "import json\nprint(json.dumps({'bench': 'b'}))\nraise SystemExit(3)\n"
    )
    _script(tmp_path, "slow", "import time\ntime.sleep(30)\n")
    broken = runner.run_one("broken", [], env=dict(os.environ), timeout=60, bench_dir=tmp_path)
    assert broken["error"].startswith("exit status 3") and "result" not in broken
    slow = runner.run_one("slow", [], env=dict(os.environ), timeout=1, bench_dir=tmp_path)
    assert slow["error"] == "timed out after 1 s" and slow["seconds"] < 20


def test_a_timeout_also_ends_what_the_benchmark_started(runner: ModuleType, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    _script(
        tmp_path,
        "spawner",
        "import subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n",
    )
    record = runner.run_one("spawner", [], env=dict(os.environ), timeout=2, bench_dir=tmp_path)
    # A surviving child would also hold the output pipe open: the run would last 60 s.
    assert record["error"] == "timed out after 2 s" and record["seconds"] < 20
    child = int(pid_file.read_text())
    for _ in range(50):  # reaped by init shortly after the kill
        if not Path(f"/proc/{child}").exists() or "Z" in _state(child):
            return
        time.sleep(0.1)
    raise AssertionError("the benchmark's child process outlived the timeout")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "Z"


def _record(name: str, started: str, **extra: object) -> dict[str, object]:
    return {
        "bench": name,
        "args": ["--users", "5"],
        "started_at": started,
        "seconds": 12.5,
        "loadavg_1m_before": 1.0,
        "loadavg_1m_after": 2.0,
        "returncode": 0,
        "machine": MACHINE,
        **extra,
    }


def test_results_are_stored_and_rendered_with_what_never_ran(
    runner: ModuleType, tmp_path: Path
) -> None:
    result = {"bench": "load", "actions_per_s": 61.8, "speedup_vs_single_user": 7.3,
              "refusals": {"book.slot_full": 2}}  # fmt: skip
    runner.store(_record("load", "2026-11-26T18:00:00+00:00", error="exit status 1"), tmp_path)
    runner.store(_record("load", "2026-11-26T18:30:00+00:00", result=result), tmp_path)
    assert not (tmp_path / "load.failed.json").exists()  # a success replaces the failure
    runner.store(_record("billing", "2026-11-26T19:00:00+00:00", error="timed out"), tmp_path)
    stored = json.loads((tmp_path / "load.json").read_text())
    assert stored["result"] == result

    text = runner.render(
        ["billing", "load", "summary_page"], tmp_path, dt.datetime(2026, 11, 26, 20, 0), MACHINE
    )
    assert "Rendered 2026-11-26 20:00 UTC" in text
    assert "2 × Test CPU, 8.0 GB RAM, Debian, Linux 6, Python 3.11.9, PostgreSQL 16.2" in text
    assert "| `load` | 2026-11-26 18:30 | `speedup_vs_single_user` 7.3 | ok |" in text
    assert "| `actions_per_s` | 61.8 |" in text
    assert '| `refusals` | `{"book.slot_full": 2}` |' in text
    assert "`bench/load.py --users 5`" in text and "load average 1.0 → 2.0" in text
    assert "| `summary_page` | — | — | not run |" in text
    assert "| `billing` | — | — | last run failed 2026-11-26T19:00: timed out |" in text


def test_every_benchmark_is_discovered_and_smoke_args_name_real_ones(runner: ModuleType) -> None:
    names = runner.discover()
    assert "load" in names and "browser_load" in names
    assert not [n for n in names if n.startswith("_")]
    assert set(runner.SMOKE_ARGS) <= set(names)


def test_results_are_kept_in_the_repository_not_in_var(runner: ModuleType) -> None:
    assert runner.RESULTS_DIR.relative_to(runner.ROOT) == Path("bench", "results")


def test_a_newer_result_left_by_the_old_runner_is_adopted(
    runner: ModuleType, tmp_path: Path
) -> None:
    legacy, folder = tmp_path / "var", tmp_path / "results"
    runner.store(_record("load", "2026-11-26T18:00:00+00:00", result={"bench": "load"}), legacy)
    runner.store(_record("search", "2026-11-26T21:00:00+00:00", result={"bench": "s"}), legacy)
    runner.store(_record("billing", "2026-11-26T21:00:00+00:00", error="timed out"), legacy)
    runner.store(_record("load", "2026-11-26T19:00:00+00:00", result={"bench": "load"}), folder)

    adopted = runner.adopt_legacy(legacy, folder)
    assert adopted == ["billing.failed.json", "search.json"]  # the older load result is not
    assert json.loads((folder / "load.json").read_text())["started_at"].startswith("2026-11-26T19")
    assert json.loads((folder / "search.json").read_text())["result"] == {"bench": "s"}
    assert runner.adopt_legacy(legacy, folder) == []  # once only
    assert runner.adopt_legacy(tmp_path / "missing", folder) == []
