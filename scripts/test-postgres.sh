#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (fleet store, contract suite): initdb + pg_ctl as an
# unprivileged user, listening on a free loopback port, trust authentication on loopback only.
#   scripts/test-postgres.sh start   → prints `export LGAP_TEST_POSTGRES=postgres://…` (eval it)
#   scripts/test-postgres.sh stop    → stops and removes the cluster named by $LGAP_TEST_PGDATA
# Needs Debian's postgresql (scripts/setup-debian.sh installs it). Runs the server as the
# invoking user, or as `postgres` when invoked as root (PostgreSQL refuses to run as root).
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL server binaries not found (apt install postgresql)" >&2; exit 1; }
as_user() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "${1:-}" in
start)
    dir=$(mktemp -d /tmp/lgap-pg-XXXXXX)
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    # A port nothing listens on (a connection attempt is refused).
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
    done
    as_user "$bin/initdb" -D "$dir/data" -U lgap --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1
    # Settings in postgresql.conf (not pg_ctl -o), so tests can stop and start the server on the same port.
    printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\nfsync = off\nmax_connections = 200\n" \
        "$port" "$dir" | as_user tee -a "$dir/data/postgresql.conf" >/dev/null
    as_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
    as_user "$bin/createdb" -h 127.0.0.1 -p "$port" -U lgap lgap_test
    echo "export LGAP_TEST_POSTGRES=postgres://lgap@127.0.0.1:$port/lgap_test LGAP_TEST_PGDATA=$dir/data LGAP_TEST_PGBIN=$bin"
    ;;
stop)
    dir=${LGAP_TEST_PGDATA:?set LGAP_TEST_PGDATA (from start)}
    as_user "$bin/pg_ctl" -D "$dir" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$(dirname "$dir")"
    ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
