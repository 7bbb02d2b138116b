#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers at 127.0.0.1:5432 and lets user postgres in without a
# password from there (what `make test`'s TEST_DATABASE_URL expects), on a Debian/Ubuntu test
# machine: starts the packaged cluster when nothing answers, and when the login is refused
# (Debian's default is peer/scram) trusts user postgres on 127.0.0.1 only.
# Meant for throwaway test machines, not for a server that holds data.
set -euo pipefail

url="postgres://postgres@127.0.0.1:5432/postgres"
answers() { pg_isready -q -h 127.0.0.1 -p 5432 -t 1; }
logs_in() { PGCONNECT_TIMEOUT=3 psql -w -X -q -At "$url" -c "select 1" >/dev/null 2>&1; }

if answers && logs_in; then exit 0; fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "error: PostgreSQL at 127.0.0.1:5432 is not usable and this script needs root to fix it" >&2
    exit 1
  fi
fi
# The newest packaged cluster, e.g. /etc/postgresql/15/main.
version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
if [ -z "$version" ] || [ ! -d "/etc/postgresql/$version/main" ]; then
  echo "error: no PostgreSQL server at 127.0.0.1:5432 and no cluster under /etc/postgresql (run scripts/system-packages.sh test)" >&2
  exit 1
fi

if ! answers; then
  echo "starting PostgreSQL $version (cluster main) on 127.0.0.1:5432"
  $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 100); do answers && break; sleep 0.1; done
  answers || { echo "error: PostgreSQL $version did not start" >&2; exit 1; }
fi

if ! logs_in; then
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  echo "trusting user postgres on 127.0.0.1 in $hba"
  # pg_hba.conf is read top down and the first matching line wins.
  $sudo sed -i '1i host all postgres 127.0.0.1/32 trust  # added by stowage scripts/ensure-postgres.sh' "$hba"
  $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  for _ in $(seq 50); do logs_in && exit 0; sleep 0.1; done
  echo "error: PostgreSQL at 127.0.0.1:5432 still refuses user postgres without a password" >&2
  exit 1
fi
