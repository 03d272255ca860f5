#!/usr/bin/env bash
# Where ingest's CPU goes: a `serversan serve` built with symbols, under
# `perf record`, while the load generator saturates it; prints the CPU time
# per report of the server, of the load generator and (for mysql) of the
# local mariadbd, then the profile's split by thread, by library and by
# function.
#
#   serversan-loadgen/profile.sh sqlite|mysql [COUNT]
#
# The symbol build goes to target/profiling (release settings with line
# tables, thin LTO; a first build takes several minutes). Needs `perf`
# (Debian's linux-perf); MariaDB at 127.0.0.1:3306 as root for `mysql`.
set -euo pipefail

backend=${1:?usage: profile.sh sqlite|mysql [COUNT]}
count=${2:-30000}
port=${PORT:-18085}
bin=target/profiling/release
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

CARGO_TARGET_DIR=target/profiling CARGO_PROFILE_RELEASE_STRIP=false \
    CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_PROFILE_RELEASE_LTO=thin \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo build --release -q -p serversan -p serversan-loadgen

url=$(fresh_database)
start_server "$url"

echo "# $backend, $(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg)"
before=$(cpu_of "$server_pid")
db_pid=
if [ "$backend" = mysql ]; then db_pid=$(pgrep -x mariadbd | head -n 1 || true); fi
if [ -n "$db_pid" ]; then db_before=$(cpu_of "$db_pid"); fi
# Servers are created first (not profiled); the profile covers 8 s of load.
(sleep 3 && perf record -q -F 499 --call-graph dwarf,16384 -p "$server_pid" \
    -o "$work/perf.data" -- sleep 8 >/dev/null 2>&1) &
perf_pid=$!
/usr/bin/time -f "load generator CPU: %U s user + %S s system" \
    "$bin/serversan-loadgen" http --url "http://127.0.0.1:$port" --database-url "$url" \
    --agents 1000 --count "$count" --concurrency 64
after=$(cpu_of "$server_pid")
if [ -n "$db_pid" ]; then db_after=$(cpu_of "$db_pid"); fi
wait "$perf_pid" || true
awk -v a="$before" -v b="$after" -v n="$count" \
    'BEGIN { printf "server CPU: %.2f s, %.0f µs per report (perf running part of the time)\n", b - a, (b - a) * 1e6 / n }'
if [ -n "$db_pid" ]; then
    awk -v a="$db_before" -v b="$db_after" -v n="$count" \
        'BEGIN { printf "mariadbd CPU: %.2f s, %.0f µs per report\n", b - a, (b - a) * 1e6 / n }'
fi

report() { perf report -i "$work/perf.data" --no-children -g none "$@" 2>/dev/null | grep -v '^#' | grep -v '^$'; }
echo "## by thread"
report --sort comm | head -5 || true
echo "## by library"
report --sort dso | head -6 || true
echo "## by function (self)"
report --sort sym | head -30 || true
echo "## by function (with callees), server code"
perf report -i "$work/perf.data" --children -g none --sort sym 2>/dev/null |
    grep -E 'serversan|serde_json|sha2|hyper::proto' | grep -v inlined | head -20 || true
