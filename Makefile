# CIMS — two commands: `make run` and `make test`. Only Python 3.11+ and make are needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint scan browser e2e bench bench-smoke venv clean-venv db-test

run: $(STAMP) ## set up, migrate, load the demo hospital on first start, serve on CIMS_PORT
	$(PY) -m cims run

test: $(STAMP) ## the whole pytest suite against a real PostgreSQL
	$(PY) -m pytest -q

lint: $(STAMP) ## ruff check, ruff format --check, mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy cims analytics models

scan: $(STAMP) ## security scans: bandit (fails on HIGH) and pip-audit (skipped when offline)
	$(PY) -m bandit -q -c pyproject.toml -r cims analytics models pages ui app.py server.py \
	  --severity-level high
	@echo "bandit: no HIGH severity findings"
	$(PY) scripts/audit_deps.py

browser: ## Debian chromium and CJK fonts, installed if missing (e2e, browser_load bench)
	@command -v chromium >/dev/null 2>&1 && fc-list :lang=zh 2>/dev/null | grep -q . || { \
	  echo "installing Debian chromium and CJK fonts (Chinese names must not print as boxes) ..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	    fonts-noto-cjk) >/dev/null || { echo "could not install chromium"; exit 1; }; }

e2e: $(STAMP) browser ## real-browser journeys (installs Debian chromium and CJK fonts if missing)
	$(PY) -m pytest -q -p no:cacheprovider tests/e2e --e2e

bench: $(STAMP) browser ## every benchmark at full scale (each prints one JSON line); writes bench/RESULTS.md
	$(PY) bench/_run_all.py

bench-smoke: $(STAMP) browser ## every benchmark at small scale: checks each prints its JSON line (var/bench/smoke/)
	$(PY) bench/_run_all.py --smoke

venv: $(STAMP)

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
