PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# The Redis server that the suite's worker pass runs against (database 15, flushed by the tests).
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# The PostgreSQL server that the suite's PostgreSQL pass runs against; pytest-django creates and
# drops a test database named after this one (test_stowage) through the server's postgres database.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/stowage

.PHONY: run test test-fast lint system-packages bench clean

$(VENV)/.run-installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.test-installed: $(VENV)/.run-installed requirements-test.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-test.txt
	touch $@

run: $(VENV)/.run-installed
	scripts/system-packages.sh run
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap --if-empty --org "My organization" --email admin@localhost.localdomain
	PORT=$(PORT) exec $(PY) manage.py runstack

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The suite on the embedded broker and SQLite, the tests that start the whole stack, the worker
# tests on a Redis server and the suite on PostgreSQL, side by side (scripts/test-passes.sh).
test: $(VENV)/.test-installed lint
	scripts/system-packages.sh test
	scripts/ensure-redis.sh
	scripts/ensure-postgres.sh
	PY=$(PY) TEST_REDIS_URL=$(TEST_REDIS_URL) TEST_DATABASE_URL=$(TEST_DATABASE_URL) scripts/test-passes.sh

test-fast: $(VENV)/.test-installed
	$(PY) -m pytest -m "not worker and not e2e"

bench: $(VENV)/.test-installed
	$(PY) bench/sandbox_exec.py

clean:
	rm -rf var/test var/test-stack var/test-redis var/test-postgres var/test-logs
