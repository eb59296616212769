# ModelPress developer commands. `make run` starts the embedded service; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
SHELL := /bin/bash
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run test lint format services browser bench clean

install: $(VENV)/.installed

# ./sdk goes in with the server: it is the modelpress-sdk that the CLI depends on.
$(VENV)/.installed: pyproject.toml sdk/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ./sdk -e '.[dev]'
	$(PY) -c "import app, worker, modelpress_sdk, onnxruntime, celery, fastapi"
	touch $@

# Start Postgres and Redis when they are not answering (they normally run already).
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && exit 0; sleep 1; done; echo "Postgres or Redis did not start" >&2; exit 1

# Debian's Chromium for the browser test of the web form (Playwright drives it, no download).
browser:
	@command -v chromium >/dev/null 2>&1 || { (apt-get update -q && apt-get install -y -q chromium) >/dev/null 2>&1 || { echo "could not install chromium: the browser tests need it" >&2; exit 1; }; }

run: install
	PORT=$(PORT) $(VENV)/bin/modelpress serve --port $(PORT)

test: install services browser
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy app worker

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) bench/speedup_spread.py

clean:
	rm -rf $(VENV) .modelpress-data .pytest_cache .mypy_cache .ruff_cache
