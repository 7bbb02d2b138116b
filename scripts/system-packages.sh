#!/usr/bin/env bash
# Installs the system packages Stowage needs when they are missing (Debian/Ubuntu),
# or says which ones to install elsewhere.
#   scripts/system-packages.sh run    what `make run` needs
#   scripts/system-packages.sh test   what `make test` needs
set -euo pipefail

purpose="${1:-run}"
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
if [ "$purpose" = "test" ]; then
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  { command -v pg_ctlcluster && command -v psql; } >/dev/null 2>&1 || need+=(postgresql)
fi

[ ${#need[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "error: missing system packages: ${need[*]}; run as root: apt-get install ${need[*]}" >&2
      exit 1
    fi
  fi
  echo "installing system packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  exit 0
fi

echo "error: missing system packages: ${need[*]}" >&2
echo "  bubblewrap    confines sandbox commands (https://github.com/containers/bubblewrap)" >&2
echo "  redis-server  the Redis server the test suite also runs against" >&2
echo "  chromium      the browser the dashboard's browser tests drive" >&2
echo "  postgresql    the PostgreSQL server the test suite also runs against" >&2
echo "Install them with your system's package manager and run make again." >&2
exit 1
