#!/usr/bin/env bash
# Where a saturated server's time goes, without a profiler: a `serversan
# serve` on a throwaway database, one saturation run of the load generator,
# then, from /proc and the server's own /metrics,
# - each server thread's CPU (as a share of the run's wall time), its
#   voluntary and involuntary context switches per report, and how long it
#   waited for a core per report (runnable but not running: the kernel's
#   schedstat run delay);
# - the average group-commit batch (reports ÷ batches);
# - the mean time a request spends in the server's handler, to compare
#   with the load generator's latency.
#
#   serversan-loadgen/threads.sh sqlite|mysql [COUNT]
#
# Uses target/release/{serversan,serversan-loadgen} (BIN to override),
# MariaDB at 127.0.0.1:3306 as root without password for `mysql`.
set -euo pipefail

backend=${1:?usage: threads.sh sqlite|mysql [COUNT]}
count=${2:-80000}
bin=${BIN:-target/release}
port=${PORT:-18086}
inflight=${INFLIGHT:-64}
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

url=$(fresh_database)
start_server "$url"

load() {
    "$bin/serversan-loadgen" http --url "http://127.0.0.1:$port" --database-url "$url" \
        --agents 1000 --count "$1" --concurrency "$inflight"
}

# thread id, name, CPU ticks, voluntary and involuntary switches, ns
# spent runnable waiting for a core.
threads() {
    local task
    for task in /proc/"$server_pid"/task/*; do
        printf '%s %s %s %s %s\n' "${task##*/}" "$(tr -d ' ' <"$task/comm")" \
            "$(awk '{ print $14 + $15 }' "$task/stat")" \
            "$(awk '/^voluntary_ctxt/ { v = $2 } /^nonvoluntary_ctxt/ { n = $2 } END { print v, n }' "$task/status")" \
            "$(awk '{ print $2 }' "$task/schedstat")"
    done | sort
}

# sum of a metric's samples whose name starts with $1.
metric() {
    curl -fs "http://127.0.0.1:$port/metrics" | awk -v m="$1" 'index($1, m) == 1 { s += $2 } END { print s + 0 }'
}

echo "# $backend, $(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg)"
# Servers are created and connections opened first, outside the figures.
load 2000 >/dev/null
threads >"$work/before"
batches0=$(metric serversan_report_batches_total)
seconds0=$(metric serversan_ingest_duration_seconds_sum)
started=$(date +%s.%N)
load "$count" | grep -E 'reports/s|latency'
ended=$(date +%s.%N)
threads >"$work/after"
batches=$(awk -v a="$(metric serversan_report_batches_total)" -v b="$batches0" 'BEGIN { print a - b }')
seconds=$(awk -v a="$(metric serversan_ingest_duration_seconds_sum)" -v b="$seconds0" 'BEGIN { print a - b }')
awk -v n="$count" -v b="$batches" -v s="$seconds" 'BEGIN {
    printf "batches: %d, %.1f reports each; mean time in the handler %.2f ms\n", b, n / b, s / n * 1000 }'
echo "thread            CPU (% of wall)  switches per report (voluntary / involuntary)  waiting for a core, µs per report"
join "$work/before" "$work/after" | awk -v t="$(getconf CLK_TCK)" -v n="$count" \
    -v w="$(awk -v a="$ended" -v b="$started" 'BEGIN { print a - b }')" '{
    cpu = ($8 - $3) / t
    if (cpu / w >= 0.01)
        printf "%-8s %-16s %5.0f %%          %.2f / %.2f                                    %5.1f\n", $1, $2, cpu / w * 100, ($9 - $4) / n, ($10 - $5) / n, ($11 - $6) / n / 1000
}'
