#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for `make test-pg`: `tools/pgcluster.sh start DIR` prints a postgresql:// URL
# (an ordinary, non-superuser owner of an empty database, as DESIGN §2 asks); `tools/pgcluster.sh stop DIR`.
# initdb refuses root: as root the cluster runs as `nobody`.
set -euo pipefail
cmd=$1 dir=$2
bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
case $cmd in
start)
    mkdir -p "$dir" && chmod 777 "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
    as_owner "$bin/psql" -h "$dir" -p "$port" -U postgres -qAt -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE okrsync LOGIN PASSWORD 'okrsync-test-pw' NOSUPERUSER NOCREATEDB NOCREATEROLE" \
        -c "CREATE DATABASE okrsync OWNER okrsync" >/dev/null
    echo "postgresql://okrsync:okrsync-test-pw@127.0.0.1:$port/okrsync"
    ;;
stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
esac
