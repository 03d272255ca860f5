#!/usr/bin/env bash
# Cost of a long-running agent: `serversan-agent run --interval 60` reporting
# to a real `serversan serve` on loopback for DURATION seconds (default one
# hour). Prints the agent's CPU time (user + system, from /proc) and its
# resident memory at the start and every ten minutes, then the CPU per hour
# and the peak RSS. The first report is excluded from the CPU figure: it
# samples CPU usage for 200 ms (no saved counters yet), which a daemon does
# once in its life.
#
#   serversan-agent/bench/daemon.sh [DURATION_SECS] [INTERVAL_SECS]
#
# Uses target/release/{serversan,serversan-agent} (BIN to override).
set -euo pipefail
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

duration=${1:-3600}
interval=${2:-60}
bin=${BIN:-target/release}
port=${PORT:-18090}
work=$(mktemp -d)
pids=()

cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Copies, so a rebuild during the hour does not change what is measured.
cp "$bin/serversan" "$bin/serversan-agent" "$work/"
export SERVERSAN_DATABASE_URL="sqlite://$work/db.sqlite"
"$work/serversan" server add bench-host --owner 1 >"$work/add.out"
tail -n 1 "$work/add.out" >"$work/auth.log"
SERVERSAN_LISTEN=127.0.0.1:$port "$work/serversan" serve >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
    if curl -fs "http://127.0.0.1:$port/healthz" >/dev/null; then break; fi
    sleep 0.2
done

mkdir -m 0700 "$work/state"
SERVERSAN_AUTH_FILE=$work/auth.log SERVERSAN_SERVER_URL=http://127.0.0.1:$port \
    SERVERSAN_STATE_DIR=$work/state "$work/serversan-agent" run --interval "$interval" \
    >"$work/agent.log" 2>&1 &
agent=$!
pids+=("$agent")

ticks=$(getconf CLK_TCK)
# CPU seconds (user + system) of a process, from /proc/PID/stat.
cpu() { awk -v t="$ticks" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }

# Let the first report (with its 200 ms CPU sample) finish.
sleep 5
start_cpu=$(cpu "$agent")
echo "# agent daemon, interval ${interval}s, ${duration}s, $(date -u +%FT%TZ)"
echo "t=0s cpu=${start_cpu}s rss=$(rss "$agent")KiB"
elapsed=0
while [ "$elapsed" -lt "$duration" ]; do
    step=$(( duration - elapsed < 600 ? duration - elapsed : 600 ))
    sleep "$step"
    elapsed=$(( elapsed + step ))
    echo "t=${elapsed}s cpu=$(cpu "$agent")s rss=$(rss "$agent")KiB"
done
end_cpu=$(cpu "$agent")
stored=$(SERVERSAN_DATABASE_URL="sqlite://$work/db.sqlite" "$work/serversan" server list 2>/dev/null | tail -n +1 || true)
awk -v a="$start_cpu" -v b="$end_cpu" -v d="$duration" \
    'BEGIN { printf "cpu per hour: %.3f s\n", (b - a) * 3600 / d }'
echo "peak rss: $(hwm "$agent") KiB"
echo "servers: $stored"
if grep -qiE "error|refused" "$work/agent.log"; then
    echo "agent log:"
    cat "$work/agent.log"
fi
