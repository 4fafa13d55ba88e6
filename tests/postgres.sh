#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests and benchmarks, on a free loopback port.
#
#   eval "$(tests/postgres.sh start)"   # exports FRESHET_TEST_POSTGRES and FRESHET_TEST_PGDIR
#   tests/postgres.sh stop "$FRESHET_TEST_PGDIR"
#
# PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user. It
# listens only on 127.0.0.1 (and a socket in its own folder), needs a password (so wrong
# credentials can be tested), and is removed by `stop`.
set -euo pipefail

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
    bin="$(pg_config --bindir 2>/dev/null || true)"
    [ -x "$bin/initdb" ] || bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [ -x "$bin/initdb" ] || { echo "tests/postgres.sh: no PostgreSQL binaries (initdb) found" >&2; exit 1; }
    dir="$(mktemp -d /tmp/freshet-pg.XXXXXX)"
    # Whatever fails from here leaves no folder and no server behind.
    trap 'as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
    password="test-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
    printf '%s\n' "$password" > "$dir/pwfile"
    [ "$(id -u)" -ne 0 ] || chown -R postgres: "$dir"
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 --pwfile="$dir/pwfile" \
        --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    port=""
    for _ in 1 2 3 4 5; do
        # A free port: bind port 0 and read what the kernel gave.
        port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
        if as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
            -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
            start >/dev/null; then
            break
        fi
        port=""
    done
    [ -n "$port" ] || { cat "$dir/server.log" >&2; exit 1; }
    trap - EXIT
    echo "export FRESHET_TEST_PGDIR='$dir'"
    echo "export FRESHET_TEST_POSTGRES='postgres://postgres:$password@127.0.0.1:$port/postgres'"
    ;;
stop)
    dir="${2:?usage: tests/postgres.sh stop DIR}"
    case "$dir" in /tmp/freshet-pg.*) ;; *) echo "tests/postgres.sh: not a test cluster: $dir" >&2; exit 1 ;; esac
    bin="$(pg_config --bindir 2>/dev/null || true)"
    [ -x "$bin/pg_ctl" ] || bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: tests/postgres.sh start | stop DIR" >&2
    exit 2
    ;;
esac
