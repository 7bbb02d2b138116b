#!/usr/bin/env bash
# Runs the suite's three passes side by side, each in a var directory of its own, and fails
# when any of them fails. Each pass's output is printed whole as soon as it ends.
#   1. every test on the embedded broker and SQLite;
#   2. the worker tests again on a Redis server ($TEST_REDIS_URL);
#   3. every test but the e2e and browser ones on PostgreSQL ($TEST_DATABASE_URL): the stack those
#      start always runs on SQLite, so there they would only repeat the first pass.
set -uo pipefail
PY="${PY:-.venv/bin/python}"
logs="var/test-logs"
rm -rf "$logs" && mkdir -p "$logs"
# Each pass keeps its temporary files apart, so that no pass clears away another's.
tmp="$(mktemp -d /tmp/stowage-test.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

STOWAGE_VAR_DIR=var/test "$PY" -m pytest --basetemp="$tmp/1" >"$logs/1-sqlite.log" 2>&1 &
pids[$!]="1-sqlite"
STOWAGE_VAR_DIR=var/test-redis REDIS_URL="$TEST_REDIS_URL" \
  "$PY" -m pytest -m worker -p no:cacheprovider --basetemp="$tmp/2" >"$logs/2-redis.log" 2>&1 &
pids[$!]="2-redis"
STOWAGE_VAR_DIR=var/test-postgres DATABASE_URL="$TEST_DATABASE_URL" \
  "$PY" -m pytest -m "not browser and not e2e" -p no:cacheprovider --basetemp="$tmp/3" >"$logs/3-postgres.log" 2>&1 &
pids[$!]="3-postgres"

failed=()
for _ in 1 2 3; do
  wait -n -p done
  status=$?
  name="${pids[$done]}"
  echo "=== pass $name: exit $status ==="
  cat "$logs/$name.log"
  [ "$status" -eq 0 ] || failed+=("$name")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed passes: ${failed[*]}" >&2
  exit 1
fi
