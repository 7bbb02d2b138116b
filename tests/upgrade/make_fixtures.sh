#!/usr/bin/env bash
# Regenerate tests/upgrade/fixtures from the code of a previous main.
#
#   tests/upgrade/make_fixtures.sh [COMMIT]      (default: 65943fb)
#
# COMMIT is checked out in a temporary worktree, and tests/upgrade/seed.py (from this tree) is run
# by that code twice: once on SQLite and once on a fresh PostgreSQL database. Each run migrates,
# fills the database through the old services, and writes expected.json. The results replace:
#
#   fixtures/sqlite/stowage.sqlite        the SQLite database (not .sqlite3, which .gitignore skips)
#   fixtures/sqlite/storage/              its blobs, in the old layout (blobs/<org>/<artifact id>)
#   fixtures/sqlite/expected.json         every row, as text, with the audit chain head
#   fixtures/postgresql/stowage.sql       pg_dump --no-owner --no-privileges of the PostgreSQL one
#   fixtures/postgresql/storage/          its blobs
#   fixtures/postgresql/expected.json
#
# Environment: PYTHON (default: .venv/bin/python of the main checkout, which needs the
# requirements of COMMIT), PG_SERVER_URL (default postgres://postgres@127.0.0.1:5432; its
# user may create databases; pg_dump and psql on PATH). The seed needs no broker, worker or S3.
#
# When another commit becomes the previous main, regenerate from it and commit the result. seed.py
# calls that commit's services and models, so it follows their names (and may need updating first).
set -euo pipefail

commit="${1:-65943fb}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(git -C "$here" rev-parse --show-toplevel)"
# The virtualenv of the main checkout (the one that holds .git), which worktrees share.
python="${PYTHON:-$(dirname "$(git -C "$repo" rev-parse --path-format=absolute --git-common-dir)")/.venv/bin/python}"
server="${PG_SERVER_URL:-postgres://postgres@127.0.0.1:5432}"
sha="$(git -C "$repo" rev-parse --verify "$commit^{commit}")"
work="$(mktemp -d)"
database="stowage_upg_seed_$$"

cleanup() {
    psql -X -q -d "$server/postgres" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
    git -C "$repo" worktree remove --force "$work/code" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

git -C "$repo" worktree add --detach --quiet "$work/code" "$sha"

seed() {  # seed <var dir> [DATABASE_URL]
    mkdir -p "$1"
    (
        cd "$work/code"
        env -u DATABASE_URL -u STOWAGE_DATABASE_NAME -u AWS_STORAGE_BUCKET_NAME \
            ${2:+DATABASE_URL="$2"} PYTHONPATH="$work/code" STOWAGE_VAR_DIR="$1" \
            "$python" "$here/seed.py" --expected "$1/expected.json" --commit "$sha"
    )
}

seed "$work/sqlite"
psql -X -q -v ON_ERROR_STOP=1 -d "$server/postgres" -c "CREATE DATABASE $database"
seed "$work/postgresql" "$server/$database"
pg_dump --no-owner --no-privileges -d "$server/$database" >"$work/postgresql/stowage.sql"

fixtures="$here/fixtures"
rm -rf "$fixtures/sqlite" "$fixtures/postgresql"
mkdir -p "$fixtures/sqlite" "$fixtures/postgresql"
cp "$work/sqlite/stowage.sqlite3" "$fixtures/sqlite/stowage.sqlite"
for kind in sqlite postgresql; do
    cp -r "$work/$kind/storage" "$fixtures/$kind/storage"
    cp "$work/$kind/expected.json" "$fixtures/$kind/expected.json"
done
cp "$work/postgresql/stowage.sql" "$fixtures/postgresql/stowage.sql"
# Temporary names of interrupted writes are no data; git keeps no empty folders anyway.
rm -rf "$fixtures"/*/storage/tmp
du -sh "$fixtures"/*
