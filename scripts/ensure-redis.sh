#!/usr/bin/env bash
# Makes sure a Redis server answers at 127.0.0.1:6379, starting one that keeps nothing on disk.
set -euo pipefail
ping() { python3 - <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", 6379), timeout=1)
    s.sendall(b"PING\r\n")
    sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}
ping && exit 0
echo "starting redis-server on 127.0.0.1:6379"
redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir /tmp >/dev/null
for _ in $(seq 50); do ping && exit 0; sleep 0.1; done
echo "error: no Redis server at 127.0.0.1:6379" >&2
exit 1
