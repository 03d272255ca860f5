#!/usr/bin/env python3
"""CPU time and peak RSS of one-shot agent runs (the cron case).

Usage: python3 serversan-agent/bench/oneshot.py [AGENT_BINARY] [RUNS]

Starts a loopback HTTP server that answers every report 200 (the agent's
cost is what is measured, not the server's), runs `AGENT report` RUNS times
and `AGENT print` RUNS times, 150 ms apart (as cron's minute apart: the CPU
counters saved by the previous run are used, no sampling), and prints the
median and 90th percentile of user+system CPU and of peak RSS. Each run is
started by the small C program measure.c beside this script, which reads the
child's figures with wait4(2): a Python parent would inflate peak RSS, which
counts what the child held before exec.
"""

import http.server
import os
import subprocess
import statistics
import sys
import tempfile
import threading
import time
from email.utils import formatdate

AGENT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/serversan-agent")
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 41
CODE = "abcdEFGH1234.c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"


class Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = b'{"status":"ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Date", formatdate(usegmt=True))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


HERE = os.path.dirname(os.path.abspath(__file__))
MEASURE = os.path.join(tempfile.gettempdir(), "serversan-measure")


def build_measure():
    subprocess.run(["cc", "-O2", "-o", MEASURE, os.path.join(HERE, "measure.c")], check=True)


def measure(args, env):
    out = subprocess.run([MEASURE, AGENT] + args, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{args} failed with {out.returncode}: {out.stderr}")
    cpu_ms, rss_kib = out.stdout.split()
    return float(cpu_ms), int(rss_kib) / 1024.0


def main():
    build_measure()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tmp = tempfile.mkdtemp()
    with open(os.path.join(tmp, "auth.log"), "w") as f:
        f.write(CODE + "\n")
    open(os.path.join(tmp, "agent.toml"), "w").close()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SERVERSAN_AUTH_FILE": os.path.join(tmp, "auth.log"),
        "SERVERSAN_AGENT_CONFIG": os.path.join(tmp, "agent.toml"),
        "SERVERSAN_STATE_DIR": os.path.join(tmp, "state"),
        "SERVERSAN_SERVER_URL": f"http://127.0.0.1:{server.server_port}",
    }
    for name, args in (("report", ["report"]), ("print", ["print"])):
        measure(args, env)  # warm-up: creates the state, fills the page cache
        cpu, rss = [], []
        for _ in range(RUNS):
            time.sleep(0.15)
            c, r = measure(args, env)
            cpu.append(c)
            rss.append(r)
        q = lambda v: statistics.quantiles(v, n=10)[-1]
        print(
            f"{name:6} runs={RUNS} cpu_ms median={statistics.median(cpu):.2f} p90={q(cpu):.2f}"
            f"  peak_rss_mib median={statistics.median(rss):.2f} p90={q(rss):.2f}"
        )
    server.shutdown()


if __name__ == "__main__":
    main()
