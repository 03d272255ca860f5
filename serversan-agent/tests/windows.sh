#!/usr/bin/env bash
# Cross-builds the agent for Windows and runs it under Wine:
#   `print` must produce a report that the protocol crate validates, and
#   `report` must deliver one to a loopback test server that checks the
#   signature (the same server the Linux delivery tests use).
# Needs: rustup target x86_64-pc-windows-gnu, gcc-mingw-w64-x86-64, wine.
# Exits 0 with "SKIPPED: ..." when they are missing (unless
# SERVERSAN_REQUIRE_WINDOWS=1, then it fails), 1 on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target=x86_64-pc-windows-gnu

missing=()
rustup target list --installed 2>/dev/null | grep -qx "$target" || missing+=("rustup target $target")
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=("x86_64-w64-mingw32-gcc (apt-get install gcc-mingw-w64-x86-64)")
command -v wine >/dev/null || missing+=("wine (apt-get install wine)")
if ((${#missing[@]})); then
    echo "SKIPPED: Windows check needs: ${missing[*]}"
    [[ "${SERVERSAN_REQUIRE_WINDOWS:-0}" == 1 ]] && exit 1
    exit 0
fi

cd "$root"
cargo build --quiet -p serversan-agent --target "$target"
work="$(mktemp -d)"
# Clean-up must not change the verdict: under `set -e` a failing command in
# an EXIT trap becomes the script's exit status (wineserver -k fails when the
# server is already gone, and a prefix still being written to can make rm
# fail), so wait for Wine to stop and ignore what clean-up reports.
cleanup() {
    WINEPREFIX="$work/wineprefix" wineserver -k >/dev/null 2>&1 || true
    WINEPREFIX="$work/wineprefix" wineserver -w >/dev/null 2>&1 || true
    rm -rf "$work" || true
}
trap cleanup EXIT
cp "target/$target/debug/serversan-agent.exe" "$work/"
x86_64-w64-mingw32-gcc -shared -O2 -o "$work/bcryptprimitives.dll" \
    "$here/windows/processprng-shim.c" -ladvapi32

export WINEDEBUG=-all WINEPREFIX="$work/wineprefix"
# The agent's state directory, as a Windows path inside the prefix.
export SERVERSAN_STATE_DIR='C:\serversan-state'

wine "$work/serversan-agent.exe" --version
wine "$work/serversan-agent.exe" print > "$work/report.json"
echo "print: $(wc -c < "$work/report.json") bytes"

# Validation and delivery are checked by the Rust side, which reads the
# printed report and runs `report` under Wine against its test server.
SERVERSAN_WINDOWS_REPORT="$work/report.json" \
SERVERSAN_WINDOWS_AGENT="$work/serversan-agent.exe" \
    cargo test --quiet -p serversan-agent --test windows_under_wine -- --ignored --nocapture --test-threads 1
echo "Windows check passed"
