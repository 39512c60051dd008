#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: installs Debian's `postgresql` package
# when no server is on the machine, then `initdb` and `pg_ctl start` in a new temporary
# directory, listening on loopback only, run as an unprivileged user when this script
# runs as root (initdb refuses root).
#
#   bash scripts/setup-postgres.sh start   # prints `postgres://…` on its last line
#   bash scripts/setup-postgres.sh stop DIR      # stops it and deletes DIR
#   bash scripts/setup-postgres.sh halt DIR      # stops it, keeping its data
#   bash scripts/setup-postgres.sh resume DIR    # starts it again on the same port
#
# `start` prints two lines at the end: the cluster's directory (for `stop`) and the URL.
set -euo pipefail

find_bin() {
  local dir
  if command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return
  fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
      echo "$dir"
      return
    fi
  done
}

as_owner() {
  # Runs "$@" as the cluster's owner.
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u "$owner" -- "$@"
  else
    "$@"
  fi
}

cmd="${1:-start}"
bin="$(find_bin)"
if [[ -z "$bin" && "$cmd" == start ]]; then
  echo "PostgreSQL server not found: installing Debian's postgresql package" >&2
  if [[ $(id -u) -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; }
  else
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
  fi
  bin="$(find_bin)"
fi
if [[ -z "$bin" ]]; then
  echo "no PostgreSQL server (initdb, pg_ctl) found after installing" >&2
  exit 1
fi

owner="$(id -un)"
if [[ $(id -u) -eq 0 ]]; then
  owner=postgres
  id "$owner" >/dev/null 2>&1 || useradd --system --no-create-home "$owner"
fi

start_server() {
  local dir="$1" port
  port="$(cat "$dir/port")"
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c max_connections=200 -c fsync=off" \
    start >&2 || { cat "$dir/server.log" >&2; exit 1; }
}

case "$cmd" in
start)
  dir="$(mktemp -d /tmp/costfloor-pg.XXXXXX)"
  chown "$owner" "$dir"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  as_owner "$bin/initdb" -D "$dir/data" -U costfloor --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  echo "$port" >"$dir/port"
  start_server "$dir"
  echo "$dir"
  echo "postgres://costfloor@127.0.0.1:$port/postgres"
  ;;
stop)
  dir="${2:?usage: setup-postgres.sh stop DIR}"
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
  rm -rf "$dir"
  ;;
halt)
  dir="${2:?usage: setup-postgres.sh halt DIR}"
  as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >&2
  ;;
resume)
  dir="${2:?usage: setup-postgres.sh resume DIR}"
  start_server "$dir"
  ;;
*)
  echo "usage: setup-postgres.sh start | stop DIR | halt DIR | resume DIR" >&2
  exit 2
  ;;
esac
