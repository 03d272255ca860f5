#!/usr/bin/env python3
"""CPU time, wall time and peak RSS of one-shot agent runs (the cron case).

Usage: python3 serversan-agent/bench/oneshot.py [AGENT_BINARY] [RUNS]

Starts loopback HTTP and HTTPS servers that answer every report 200 (the
agent's cost is what is measured, not the server's; HTTPS uses the test
certificate in tests/fixtures and the agent trusts it through
SERVERSAN_CA_FILE), runs `AGENT report` against each and `AGENT print`, RUNS
times each, 150 ms apart (as cron's minute apart: the CPU
counters saved by the previous run are used, no sampling), and prints the
median and 90th percentile of user+system CPU, of wall time and of peak
RSS. Each run is
started by the small C program measure.c beside this script, which reads the
child's figures with wait4(2): a Python parent would inflate peak RSS, which
counts what the child held before exec.
"""

import http.server
import os
import ssl
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
    # The headers and the body go out as separate writes (separate TLS
    # records over HTTPS); with Nagle on, the body waits for the agent's
    # delayed ACK, which would add 40 ms of wall time to every run.
    disable_nagle_algorithm = True

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
    cpu_ms, rss_kib, wall_ms = out.stdout.split()
    return float(cpu_ms), int(rss_kib) / 1024.0, float(wall_ms)


FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")


def start_server(tls):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(FIXTURES, "server.pem"), os.path.join(FIXTURES, "server.key"))
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    build_measure()
    server = start_server(tls=False)
    tls_server = start_server(tls=True)
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
    tls_env = dict(env)
    tls_env["SERVERSAN_SERVER_URL"] = f"https://localhost:{tls_server.server_port}"
    tls_env["SERVERSAN_CA_FILE"] = os.path.join(FIXTURES, "ca.pem")
    tls_env["SERVERSAN_STATE_DIR"] = os.path.join(tmp, "state-tls")
    for name, args, env in (
        ("report", ["report"], env),
        ("report-https", ["report"], tls_env),
        ("print", ["print"], env),
    ):
        measure(args, env)  # warm-up: creates the state, fills the page cache
        cpu, rss, wall = [], [], []
        for _ in range(RUNS):
            time.sleep(0.15)
            c, r, w = measure(args, env)
            cpu.append(c)
            rss.append(r)
            wall.append(w)
        q = lambda v: statistics.quantiles(v, n=10)[-1]
        print(
            f"{name:12} runs={RUNS} cpu_ms median={statistics.median(cpu):.2f} p90={q(cpu):.2f}"
            f"  wall_ms median={statistics.median(wall):.2f} p90={q(wall):.2f}"
            f"  peak_rss_mib median={statistics.median(rss):.2f} p90={q(rss):.2f}"
        )
    server.shutdown()
    tls_server.shutdown()


if __name__ == "__main__":
    main()
