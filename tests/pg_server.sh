#!/bin/sh
# tests/pg_server.sh - a private PostgreSQL server for tests and benches:
#
#   pg_server.sh start DIR PORT     initdb in DIR (created, mode 755) and
#                                   start on 127.0.0.1:PORT; prints the URL
#   pg_server.sh stop DIR           stop it (immediate: no checkpoint wait)
#   pg_server.sh restart DIR        stop fast and start again on its port
#
# The server is Debian's newest PostgreSQL with its defaults (fsync on,
# synchronous_commit on), trust authentication, listening on 127.0.0.1
# and a socket in DIR only. As root it runs as the postgres user (initdb
# refuses root); otherwise as the caller. Nothing outside DIR is touched.
set -eu
cd / # the postgres user may not enter the caller's directory
cmd=$1 dir=$2
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ]; then
    echo "pg_server.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2
    exit 1
fi
as() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
start() {
    as "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
        -o "-p $1 -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" \
        start >/dev/null
}
case $cmd in
start)
    port=$3
    mkdir -p "$dir"
    chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    as "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    start "$port" || { cat "$dir/log" >&2; exit 1; }
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    as "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    ;;
restart)
    as "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    start "$(cat "$dir/port")"
    ;;
*)
    echo "usage: pg_server.sh start DIR PORT | stop DIR | restart DIR" >&2
    exit 2
    ;;
esac
