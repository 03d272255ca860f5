#!/usr/bin/env bash
# Bot latency under ingest load: the `bot_latency` example times /stat and
# /list while the same process serves report ingest (with alert
# evaluation, as `serversan serve` runs next to its bot) and the load
# generator sends it reports, as fast as possible or at RATE per second.
#
#   serversan-loadgen/bot-bench.sh sqlite|mysql [RATE]
#
# Uses target/release/{examples/bot_latency,serversan-loadgen} (BIN to
# override the directory; build them with `cargo build --release -p
# serversan -p serversan-loadgen --example bot_latency`), MariaDB at
# 127.0.0.1:3306 as root without password for `mysql`. The load generator
# is stopped once the example has timed its commands; it prints nothing.
set -euo pipefail

backend=${1:?usage: bot-bench.sh sqlite|mysql [RATE]}
rate=${2:-}
bin=${BIN:-target/release}
port=${PORT:-18096}
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"
example_pid=
load_pid=

on_exit() {
    if [ -n "$example_pid" ]; then kill "$example_pid" 2>/dev/null || true; fi
    if [ -n "$load_pid" ]; then kill "$load_pid" 2>/dev/null || true; fi
}

url=$(fresh_database)

echo "# $backend, ${rate:-saturation}, $(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg)"
# The example stores its 1,000 servers, starts serving, then waits 8 s
# for the load generator to create its own servers and reach its pace.
"$bin/examples/bot_latency" --database-url "$url" --serve "127.0.0.1:$port" \
    --start-after 8 --runs 200 >"$work/bot.out" 2>&1 &
example_pid=$!
for _ in $(seq 150); do
    if grep -q "serving ingest" "$work/bot.out"; then break; fi
    sleep 0.2
done
"$bin/serversan-loadgen" http --url "http://127.0.0.1:$port" --database-url "$url" \
    --agents 1000 --count 2000000 --duration 120 --concurrency 64 ${rate:+--rate "$rate"} \
    >"$work/load.out" 2>&1 &
load_pid=$!
status=0
wait "$example_pid" || status=$?
example_pid=
if ! kill "$load_pid" 2>/dev/null; then
    # It ended before the bot was timed: the figures would be an idle bot's.
    echo "the load generator stopped early:" >&2
    cat "$work/load.out" >&2
    status=1
fi
wait "$load_pid" 2>/dev/null || true
load_pid=
grep -E "runs|ingest while" "$work/bot.out" || cat "$work/bot.out" >&2
if [ "$status" -ne 0 ]; then exit "$status"; fi
