PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# The Redis server that the suite's second pass runs against (database 15, flushed by the tests).
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# The PostgreSQL server that the suite's third pass runs against; pytest-django creates and
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

# The whole suite on the embedded broker, then the worker suite on a Redis server, then the
# suite on PostgreSQL. The e2e and browser tests are left out of the PostgreSQL pass: the stack
# they start (LocalStack) deliberately drops DATABASE_URL and always runs on SQLite, so there
# they would only repeat the first pass.
lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: $(VENV)/.test-installed lint
	scripts/system-packages.sh test
	$(PY) -m pytest
	scripts/ensure-redis.sh
	REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest -m worker -p no:cacheprovider
	scripts/ensure-postgres.sh
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m pytest -m "not browser and not e2e" -p no:cacheprovider

test-fast: $(VENV)/.test-installed
	$(PY) -m pytest -m "not worker and not e2e"

bench: $(VENV)/.test-installed
	$(PY) bench/sandbox_exec.py

clean:
	rm -rf var/test
