# Shared by the benchmark scripts beside it (sourced, not run): a work
# directory, a throwaway database, a `serversan serve` on it, and the CPU
# time of a process; on exit the server is stopped and the database and the
# directory removed. A script may define `on_exit` to stop more.
#
# Set before sourcing: `backend` (sqlite|mysql), `bin` (the directory of
# the binaries) and `port` (where the server listens). MariaDB at
# 127.0.0.1:3306 as root without password for `mysql`.
# shellcheck shell=bash
# The sourcing script sets backend, bin and port:
# shellcheck disable=SC2154

unset RUST_BACKTRACE RUST_LIB_BACKTRACE

work=$(mktemp -d)
server_pid=
database=lgbench_$$

cleanup() {
    if declare -F on_exit >/dev/null; then on_exit; fi
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    if [ "$backend" = mysql ]; then
        mariadb -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $database" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Prints the URL of an empty database, replacing the one an earlier call made.
fresh_database() {
    if [ "$backend" = mysql ]; then
        mariadb -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $database; \
            CREATE DATABASE $database CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        echo "mysql://root@127.0.0.1:3306/$database"
    else
        rm -f "$work"/db.sqlite*
        echo "sqlite://$work/db.sqlite"
    fi
}

# Starts `serversan serve` on the database at URL $1 and waits until it
# answers; its log goes to $work/serve.log.
start_server() {
    if curl -fs "http://127.0.0.1:$port/healthz" >/dev/null; then
        echo "something already answers on port $port: stop it or set PORT" >&2
        exit 1
    fi
    # The cap on arrivals per server would refuse the load generator's
    # reports (1,000 servers sending many each), which is not a cost.
    SERVERSAN_DATABASE_URL=$1 SERVERSAN_LISTEN=127.0.0.1:$port \
        SERVERSAN_MAX_REPORTS_PER_MINUTE=1000000 \
        "$bin/serversan" serve >"$work/serve.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 50); do
        if curl -fs "http://127.0.0.1:$port/healthz" >/dev/null; then return; fi
        sleep 0.2
    done
    cat "$work/serve.log" >&2
    exit 1
}

stop_server() {
    kill "$server_pid"
    wait "$server_pid" || true
    server_pid=
}

ticks=$(getconf CLK_TCK)
# CPU seconds a running process has used (0 without one).
cpu_of() {
    if [ -n "$1" ] && [ -r "/proc/$1/stat" ]; then
        awk -v t="$ticks" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"
    else
        echo 0
    fi
}
