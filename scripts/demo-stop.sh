#!/usr/bin/env bash
# Stops what `make demo` started (the zonevault server and the swtpm), by PID.
set -u
cd "$(dirname "$0")/.."
for name in server swtpm; do
  pidfile="demo/$name.pid"
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      echo "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
  fi
done
