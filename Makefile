PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# The Redis server that the suite's second pass runs against (database 15, flushed by the tests).
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test test-fast system-packages bench clean

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

# The whole suite on the embedded broker, then the worker suite on a Redis server.
test: $(VENV)/.test-installed
	scripts/system-packages.sh test
	$(PY) -m pytest
	scripts/ensure-redis.sh
	REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest -m worker -p no:cacheprovider

test-fast: $(VENV)/.test-installed
	$(PY) -m pytest -m "not worker and not e2e"

bench: $(VENV)/.test-installed
	$(PY) bench/sandbox_exec.py

clean:
	rm -rf var/test
