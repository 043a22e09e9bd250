#!/usr/bin/env bash
# What the test suite talks to, made ready on this machine: the PostgreSQL server (started if
# it is installed but down) and Debian's Chromium for the browser tests. Idempotent.
set -u
pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null || python3 - <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", 5432)) == 0 else 1)
PY
}
if ! pg_up; then
  echo "PostgreSQL is not answering on 127.0.0.1:5432; starting it"
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "PostgreSQL could not be started: the PostgreSQL tests will fail" >&2; exit 1; }
fi
# Chromium for the browser tests; a CJK font so the screenshots show Chinese, not boxes.
if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "wqy\|noto.*cjk"; then
  echo "Installing Debian's chromium and a CJK font for the browser tests"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null) \
      || echo "chromium could not be installed: browser tests will be skipped" >&2
  else
    echo "not root or no apt-get: browser tests will be skipped" >&2
  fi
fi
exit 0
