"""Run every benchmark, keep each one's last JSON line, and render bench/RESULTS.md.

Each ``bench/*.py`` (not ``_*``) runs in its own process; its stdout is echoed and its last
non-empty line must be one JSON object with a "bench" key. Full scale (``make bench``)
stores each result with its arguments, timing and machine in bench/results/<bench>.json
(committed, so a fresh clone still knows every result; a failure in <bench>.failed.json, the
last good result kept) and renders bench/RESULTS.md from the latest stored result of every
benchmark, so a partial run still shows everything known and a benchmark never run shows
"not run". A result left in var/bench/results/ by an older runner is adopted when it is newer
than bench/results' copy. Smoke (``make bench-smoke``) runs each with small arguments only to
check the JSON line; results go to var/bench/smoke/, never to RESULTS.md, and — unless
CIMS_DATABASE_URL names a server — on an embedded server of its own
(CIMS_DATA_DIR=var/bench/smoke/data) so small runs never replace the full-scale databases.
Exits non-zero when any benchmark failed.

    .venv/bin/python bench/_run_all.py [--smoke] [--only NAME ...] [--render]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
LEGACY_RESULTS_DIR = ROOT / "var" / "bench" / "results"  # where results were kept before
SMOKE_DIR = ROOT / "var" / "bench" / "smoke"
REPORT = BENCH_DIR / "RESULTS.md"
SMOKE_TIMEOUT_S = 600
# Defaults are full scale; only what must be given is listed (the issues' scales: analytics
# on the 1M-patient hospital, the import on sample_a replicated to over 1M rows).
FULL_ARGS: dict[str, list[str]] = {
    "analytics": ["--patients", "1000000"],
    "import": ["--replicas", "60"],
}
SMOKE_ARGS: dict[str, list[str]] = {
    "analytics": ["--patients", "2000"],
    "audit_overhead": ["--updates", "200", "--seconds", "1", "--seal-rows", "2000"],
    "backup": ["--patients", "300", "--rounds", "1"],
    "billing": ["--invoices", "20", "--instalments", "2", "--cashiers", "4"],
    "browser_load": ["--sessions", "2", "--opens", "1", "--patients", "300"],
    "import": ["--replicas", "1", "--orm-patients", "5"],
    "load": ["--users", "4", "--seconds", "5", "--single-seconds", "3", "--patients", "600",
             "--processes", "2", "--think-s", "0.5", "--stress-seconds", "3"],
    "patient_search": ["--patients", "1000", "--samples", "20", "--scan-samples", "5"],
    "risk_scoring": ["--patients", "400", "--runs", "5", "--rows", "1000"],
    "seed_demo": ["--patients", "500", "--baseline-rows", "200"],
    "summary_page": ["--runs", "5"],
}  # fmt: skip
SMOKE_DIABETES_ROWS = 2000


def discover() -> list[str]:
    """Benchmark names: bench/*.py except files starting with an underscore."""
    return sorted(p.stem for p in BENCH_DIR.glob("*.py") if not p.name.startswith("_"))


def last_json(stdout: str) -> dict[str, Any]:
    """The last non-empty stdout line as a JSON object with a "bench" key, or ValueError."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("no output")
    try:
        value = json.loads(lines[-1])
    except json.JSONDecodeError as bad:
        raise ValueError(f"last line is not JSON: {lines[-1][:200]!r}") from bad
    if not isinstance(value, dict) or "bench" not in value:
        raise ValueError(f"last line is not an object with a 'bench' key: {lines[-1][:200]!r}")
    return value


def machine(env: dict[str, str] | None = None) -> dict[str, Any]:
    """CPU, RAM, OS, Python and the configured PostgreSQL server's version."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    try:
        os_name = platform.freedesktop_os_release()["PRETTY_NAME"]
    except OSError:
        os_name = platform.system()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu,
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "os": f"{os_name}, Linux {platform.release()}",
        "python": platform.python_version(),
        "postgresql": _postgres_version(env or dict(os.environ)),
    }


def _postgres_version(env: dict[str, str]) -> str:
    code = (  # the server's own "postgres" database: the app's may not exist yet
        "import psycopg; from sqlalchemy.engine import make_url; from cims.db import database_url; "
        "url = make_url(database_url()).set(drivername='postgresql', database='postgres'); "
        "conn = psycopg.connect(url.render_as_string(hide_password=False)); "
        "print(conn.execute('SHOW server_version').fetchone()[0])"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        return "unknown"
    return (
        done.stdout.strip().splitlines()[-1] if done.returncode == 0 and done.stdout else "unknown"
    )


def _smoke_diabetes_sample() -> list[str]:
    """A small head of the shared diabetes-130 extract (the full one takes minutes)."""
    sys.path.insert(0, str(ROOT))
    from cims.config import shared_data_dir

    source = shared_data_dir() / "diabetes130" / "diabetic_data_dev.csv"
    if not source.exists():
        return []
    sample = SMOKE_DIR / "diabetic_data_smoke.csv"
    SMOKE_DIR.mkdir(parents=True, exist_ok=True)
    with source.open() as src, sample.open("w") as out:
        for n, line in enumerate(src):
            if n > SMOKE_DIABETES_ROWS:
                break
            out.write(line)
    return ["--data", str(sample)]


def arguments(name: str, *, smoke: bool) -> list[str]:
    """Command-line arguments of one benchmark at full or smoke scale."""
    if not smoke:
        return FULL_ARGS.get(name, [])
    if name == "readmission_diabetes130":
        return _smoke_diabetes_sample()
    return SMOKE_ARGS.get(name, [])


def run_one(
    name: str,
    args: list[str],
    *,
    env: dict[str, str],
    timeout: float | None,
    bench_dir: Path = BENCH_DIR,
) -> dict[str, Any]:
    """Run ``<bench_dir>/<name>.py``, echoing its output; the stored record (result or error)."""
    command = [sys.executable, str(bench_dir / f"{name}.py"), *args]
    record: dict[str, Any] = {
        "bench": name,
        "args": args,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "loadavg_1m_before": round(os.getloadavg()[0], 2),
    }
    print(f"== bench/{name}.py {' '.join(args)}", flush=True)
    began = time.perf_counter()
    # Its own process group, so a timeout or Ctrl-C also ends its servers and browsers.
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    # A watchdog, since a benchmark may print nothing for minutes.
    watchdog = threading.Timer(timeout, kill) if timeout is not None else None
    if watchdog is not None:
        watchdog.start()
    captured: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            print(line, end="", flush=True)
            captured.append(line)
        code = proc.wait()
    except KeyboardInterrupt:
        kill()
        raise
    timed_out = watchdog is not None and not watchdog.is_alive()
    if watchdog is not None:
        watchdog.cancel()
    record |= {
        "seconds": round(time.perf_counter() - began, 1),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        "returncode": code,
    }
    if timed_out:
        record["error"] = f"timed out after {timeout:.0f} s"
        return record
    try:
        record["result"] = last_json("".join(captured))
    except ValueError as bad:
        record["error"] = str(bad)
    if code != 0:
        record["error"] = f"exit status {code}" + (
            f"; {record['error']}" if "error" in record else ""
        )
        record.pop("result", None)
    return record


def store(record: dict[str, Any], folder: Path) -> None:
    """Keep a success as <bench>.json (dropping an older failure), a failure as .failed.json."""
    folder.mkdir(parents=True, exist_ok=True)
    name = record["bench"]
    if "error" in record:
        (folder / f"{name}.failed.json").write_text(json.dumps(record, indent=1))
        return
    (folder / f"{name}.json").write_text(json.dumps(record, indent=1, ensure_ascii=False))
    (folder / f"{name}.failed.json").unlink(missing_ok=True)


def adopt_legacy(legacy: Path, folder: Path) -> list[str]:
    """Copy each record file in ``legacy`` that started later than ``folder``'s file of the same
    name (a result or a failure); the names copied."""
    adopted = []
    for path in sorted(legacy.glob("*.json")) if legacy.is_dir() else []:
        record, ours = _load(path), _load(folder / path.name)
        if record and (ours is None or record["started_at"] > ours["started_at"]):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / path.name).write_text(path.read_text())
            adopted.append(path.name)
    return adopted


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _summary_line(name: str) -> str:
    """First line of a benchmark's docstring (what it measures)."""
    path = BENCH_DIR / f"{name}.py"
    if not path.exists():
        return ""
    import ast

    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return doc.splitlines()[0] if doc else ""


def _ratios(result: dict[str, Any]) -> str:
    keys = [k for k in result if k.startswith(("speedup_vs_", "overhead_vs_"))]
    return ", ".join(f"`{k}` {result[k]}" for k in keys) or "—"


def _value(value: Any) -> str:
    if isinstance(value, dict | list):
        return "`" + json.dumps(value, ensure_ascii=False) + "`"
    return str(value)


def _machine_text(m: dict[str, Any]) -> str:
    return (
        f"{m.get('cpu_count')} × {m.get('cpu_model')}, {m.get('ram_gb')} GB RAM, {m.get('os')}, "
        f"Python {m.get('python')}, PostgreSQL {m.get('postgresql')}"
    )


def render(names: list[str], folder: Path, now: dt.datetime, current: dict[str, Any]) -> str:
    """RESULTS.md text from the latest stored result of each benchmark in ``names``."""
    out = [
        "# Benchmark results",
        "",
        f"Rendered {now:%Y-%m-%d %H:%M} UTC by `make bench` (`bench/_run_all.py`) from the latest "
        "stored result of each benchmark (`bench/results/`). Every benchmark prints one JSON "
        "line last; ratios (`speedup_vs_*`, `overhead_vs_*`) are measured against the naive way "
        "in the same run. The load average at the start and end of each run is shown because "
        "figures from a shared machine depend on what else it was doing.",
        "",
        f"**Machine:** {_machine_text(current)}.",
        "",
        "| benchmark | ran (UTC) | ratio vs baseline | status |",
        "|---|---|---|---|",
    ]
    sections = []
    for name in names:
        good, failed = _load(folder / f"{name}.json"), _load(folder / f"{name}.failed.json")
        status = "ok" if good else "not run"
        if failed and (not good or failed["started_at"] > good["started_at"]):
            status = f"last run failed {failed['started_at'][:16]}: {failed['error'][:80]}"
        when = good["started_at"][:16].replace("T", " ") if good else "—"
        ratios = _ratios(good["result"]) if good else "—"
        out.append(f"| `{name}` | {when} | {ratios} | {status} |")
        sections += ["", f"## {name}", "", _summary_line(name), ""]
        if not good:
            sections.append("not run" if not failed else f"not run successfully ({status})")
            continue
        command = " ".join(["bench/" + name + ".py", *good["args"]])
        sections.append(
            f"Ran {when} UTC for {good['seconds']} s: `{command}`; load average "
            f"{good['loadavg_1m_before']} → {good['loadavg_1m_after']}."
        )
        if good.get("machine") and good["machine"] != current:
            sections.append(f"Machine then: {_machine_text(good['machine'])}.")
        sections += ["", "| figure | value |", "|---|---|"]
        sections += [f"| `{k}` | {_value(v)} |" for k, v in good["result"].items() if k != "bench"]
    return "\n".join(out + sections) + "\n"


def main() -> None:
    """Run the chosen benchmarks at full or smoke scale; store and render."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small scale, results not reported")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these benchmarks only")
    parser.add_argument("--render", action="store_true", help="only render RESULTS.md")
    options = parser.parse_args()
    names = discover()
    chosen = options.only or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)}")
    env = dict(os.environ)
    if options.smoke and not env.get("CIMS_DATABASE_URL"):
        env["CIMS_DATA_DIR"] = str(SMOKE_DIR / "data")
    failures = []
    if not options.smoke:
        for name in adopt_legacy(LEGACY_RESULTS_DIR, RESULTS_DIR):
            print(f"adopted var/bench/results/{name} (newer than bench/results/)", flush=True)
    if not options.render:
        current = machine(env)
        for name in chosen:
            args = arguments(name, smoke=options.smoke)
            timeout = SMOKE_TIMEOUT_S if options.smoke else None
            record = run_one(name, args, env=env, timeout=timeout) | {"machine": current}
            store(record, SMOKE_DIR if options.smoke else RESULTS_DIR)
            if "error" in record:
                failures.append(f"{name}: {record['error']}")
            print(f"-- {name}: {record.get('error') or 'ok'} ({record['seconds']} s)", flush=True)
    if not options.smoke:
        current = machine() if options.render else current
        REPORT.write_text(render(names, RESULTS_DIR, dt.datetime.now(dt.UTC), current))
        print(f"wrote {REPORT.relative_to(ROOT)}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
