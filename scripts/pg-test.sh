#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the test suite, from Debian's packages.
#
#   eval "$(bash scripts/pg-test.sh start)"   # prints export BANKID_TEST_POSTGRES=… and PGTEST_DIR=…
#   bash scripts/pg-test.sh stop "$PGTEST_DIR"
#
# The cluster lives in a fresh temporary directory, listens on 127.0.0.1 only, on a free port,
# and has one password-protected superuser, bankid_test; tests create a database each
# (bankid_sim::testdb). PostgreSQL refuses to run as root, so as root it runs as the user
# postgres (Debian's package makes it).
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bindir" ] || { echo "pg-test: PostgreSQL is not installed (bash scripts/setup.sh)" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
  dir=$(mktemp -d /tmp/bankid-pgtest.XXXXXXXX)
  chmod 0755 "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  printf '%s\n' "$password" > "$dir/pw"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/pw"
  as_owner "$bindir/initdb" -D "$dir/data" -U bankid_test --pwfile="$dir/pw" -A scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  rm -f "$dir/pw"
  # A free port: let the kernel pick one, then hand it to the server.
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=on" \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  echo "export BANKID_TEST_POSTGRES='postgres://bankid_test:$password@127.0.0.1:$port/postgres'"
  echo "export PGTEST_DIR='$dir'"
  ;;
stop)
  dir=${2:?usage: pg-test.sh stop DIR}
  [ -d "$dir/data" ] || exit 0
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: pg-test.sh start | stop DIR" >&2
  exit 2
  ;;
esac
