#!/usr/bin/env bash
# Runs the suite in four passes side by side, each in a var directory of its own, and fails
# when any of them fails. Each pass's output is printed whole as soon as it ends, and what failed
# is printed once more at the end.
#   1. every test but the e2e and browser ones, on the embedded broker and SQLite;
#   2. the e2e and browser tests, against the whole stack (SQLite, embedded Redis): one stack that
#      most of their modules share, each in an organization of its own, and a few stacks of their own;
#   3. the worker tests again on a Redis server ($TEST_REDIS_URL);
#   4. every test but the e2e and browser ones that reaches the database, on PostgreSQL
#      ($TEST_DATABASE_URL): the stack those start always runs on SQLite, and a test that reaches
#      no database (tests/database_only.py) does the same on every backend, so there they would
#      only repeat the first two passes.
set -uo pipefail
PY="${PY:-.venv/bin/python}"
logs="var/test-logs"
rm -rf "$logs" && mkdir -p "$logs"
# Each pass keeps its temporary files apart, so that no pass clears away another's.
tmp="$(mktemp -d /tmp/stowage-test.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
declare -A names

STOWAGE_VAR_DIR=var/test "$PY" -m pytest -m "not browser and not e2e" --basetemp="$tmp/1" >"$logs/1-sqlite.log" 2>&1 &
names[$!]="1-sqlite"
STOWAGE_VAR_DIR=var/test-stack "$PY" -m pytest -m "browser or e2e" -p no:cacheprovider --basetemp="$tmp/2" \
  >"$logs/2-stack.log" 2>&1 &
names[$!]="2-stack"
STOWAGE_VAR_DIR=var/test-redis REDIS_URL="$TEST_REDIS_URL" \
  "$PY" -m pytest -m worker -p no:cacheprovider --basetemp="$tmp/3" >"$logs/3-redis.log" 2>&1 &
names[$!]="3-redis"
STOWAGE_VAR_DIR=var/test-postgres DATABASE_URL="$TEST_DATABASE_URL" \
  "$PY" -m pytest -m "not browser and not e2e" --database-tests-only -p no:cacheprovider --basetemp="$tmp/4" >"$logs/4-postgres.log" 2>&1 &
names[$!]="4-postgres"

failed=()
for _ in "${!names[@]}"; do
  wait -n -p done
  status=$?
  name="${names[$done]}"
  echo "=== pass $name: exit $status ==="
  cat "$logs/$name.log"
  [ "$status" -eq 0 ] || failed+=("$name")
done
if [ ${#failed[@]} -gt 0 ]; then
  # What failed, again at the end, where a reader of the output's last lines finds it.
  for name in "${failed[@]}"; do
    echo "=== what failed in pass $name ===" >&2
    grep -E '^(FAILED|ERROR) |^E  ' "$logs/$name.log" | cut -c1-300 | tail -n 40 >&2
    tail -n 1 "$logs/$name.log" >&2
  done
  echo "failed passes: ${failed[*]}" >&2
  exit 1
fi
