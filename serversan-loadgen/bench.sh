#!/usr/bin/env bash
# Ingest benchmark: a `serversan serve` on a throwaway database, the load
# generator at saturation and at a steady 1,000 reports/s, then the same
# rows stored directly (no HTTP), in one run; repeated RUNS times. The
# saturation and direct runs also print their CPU time per report (the
# server's, the load generator's, and mariadbd's for `mysql`).
#
#   serversan-loadgen/bench.sh sqlite|mysql [RUNS]
#
# INFLIGHT (default 64) sets the requests in flight in every run.
# Uses target/release/{serversan,serversan-loadgen} (BIN to override),
# MariaDB at 127.0.0.1:3306 as root without password for `mysql`.
set -euo pipefail

backend=${1:?usage: bench.sh sqlite|mysql [RUNS]}
runs=${2:-3}
bin=${BIN:-target/release}
port=${PORT:-18080}
count=${COUNT:-50000}
agents=${AGENTS:-1000}
# Requests in flight, in the HTTP runs and the direct one alike.
inflight=${INFLIGHT:-64}
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

# CPU seconds of this shell's finished children (the load generator runs),
# from the output of `times`, which must run in this shell itself.
children_cpu() {
    awk 'function s(x, a) { split(x, a, "m"); sub("s", "", a[2]); return a[1] * 60 + a[2] }
        NR == 2 { printf "%.3f", s($1) + s($2) }' "$1"
}
db_pid=
if [ "$backend" = mysql ]; then db_pid=$(pgrep -x mariadbd | head -n 1 || true); fi

echo "# $backend, $(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq "$runs"); do
    echo "## run $run"
    url=$(fresh_database)
    start_server "$url"
    echo "### http saturation"
    times >"$work/times-before"
    before="$(cpu_of "$server_pid") $(children_cpu "$work/times-before") $(cpu_of "$db_pid")"
    "$bin/serversan-loadgen" http --url "http://127.0.0.1:$port" --database-url "$url" \
        --agents "$agents" --count "$count" --concurrency "$inflight" || true
    # CPU per report: what the machine pays for each, beside the rate.
    # The load generator's includes creating its servers.
    times >"$work/times-after"
    echo "$before $(cpu_of "$server_pid") $(children_cpu "$work/times-after") $(cpu_of "$db_pid")" |
        awk -v n="$count" -v db="$db_pid" '{
            printf "cpu per report: server %.0f µs, load generator %.0f µs", ($4 - $1) / n * 1e6, ($5 - $2) / n * 1e6
            if (db != "") printf ", mariadbd %.0f µs", ($6 - $3) / n * 1e6
            printf "\n" }'
    echo "### http steady 1000/s"
    "$bin/serversan-loadgen" http --url "http://127.0.0.1:$port" --database-url "$url" \
        --agents "$agents" --count 20000 --concurrency "$inflight" --rate 1000 || true
    stop_server
    # As many reports in flight as the HTTP run, so group commit forms
    # batches of the same size: the ceiling HTTP could reach.
    echo "### direct (Storage::record_report, $inflight in flight)"
    times >"$work/times-before"
    before="$(children_cpu "$work/times-before") $(cpu_of "$db_pid")"
    "$bin/serversan-loadgen" direct --database-url "$url" \
        --agents "$agents" --count "$count" --concurrency "$inflight" || true
    times >"$work/times-after"
    echo "$before $(children_cpu "$work/times-after") $(cpu_of "$db_pid")" |
        awk -v n="$count" -v db="$db_pid" '{
            printf "cpu per report: storing directly %.0f µs", ($3 - $1) / n * 1e6
            if (db != "") printf ", mariadbd %.0f µs", ($4 - $2) / n * 1e6
            printf "\n" }'
    echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
done
