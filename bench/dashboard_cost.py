#!/usr/bin/env python3
"""The cost of the live dashboard (docs/observability.md): --tasks
(3,000) no-op `true` tasks through `xylem run --workers 2
--cores-per-worker 1 --quiet --http 0`, with 10 Server-Sent Events
clients (as 10 open browsers) reading /events from the moment the run
prints its dashboard's address, against the same run with none
connected, and, for reference, without --http at all. Alternating, best
of --rounds; prints the rates and the ratios.

Target (issue 16): 10 clients cost under 3% of the throughput.

    bench/dashboard_cost.py [--tasks 3000] [--clients 10] [--rounds 3]
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
XYLEM = os.environ.get("XYLEM_BIN", str(REPO / "build/src/cli/xylem"))


def reader(port, got, stop):
    """One client: reads /events until the stream ends."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Accept: text/event-stream\r\n\r\n")
        while not stop.is_set():
            b = s.recv(65536)
            if not b:
                break
            got.append(len(b))
        s.close()
    except OSError:
        pass


def one_run(wf, http, clients):
    args = [XYLEM, "run", wf, "--workers", "2", "--cores-per-worker", "1",
            "--quiet"]
    if http:
        args += ["--http", "0"]
    got, stop, threads = [], threading.Event(), []
    t0 = time.monotonic()
    p = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    err = []
    if http:
        for line in p.stderr:
            err.append(line)
            m = re.search(r"dashboard at http://[^:]+:(\d+)/", line)
            if m:
                port = int(m.group(1))
                break
        for _ in range(clients):
            t = threading.Thread(target=reader, args=(port, got, stop),
                                 daemon=True)
            t.start()
            threads.append(t)
    err += p.stderr.readlines()
    rc = p.wait()
    elapsed = time.monotonic() - t0
    stop.set()
    for t in threads:
        t.join(5)
    if rc != 0:
        sys.exit(f"xylem run failed ({rc}):\n{''.join(err)}")
    return elapsed, sum(got)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="xylem-dash-bench-") as tmp:
        wf = os.path.join(tmp, "noop.json")
        json.dump({"tasks": [{"id": f"t{i}", "command": "true"}
                             for i in range(a.tasks)]}, open(wf, "w"))
        best = {"none": 1e9, "idle": 1e9, "clients": 1e9}
        streamed = 0
        for _ in range(a.rounds):
            best["none"] = min(best["none"], one_run(wf, False, 0)[0])
            best["idle"] = min(best["idle"], one_run(wf, True, 0)[0])
            t, n = one_run(wf, True, a.clients)
            best["clients"] = min(best["clients"], t)
            streamed = max(streamed, n)
    rate = {k: a.tasks / v for k, v in best.items()}
    print(f"no-op tasks: {a.tasks}, 2 workers x 1 core, best of {a.rounds}")
    print(f"  without --http:                 {rate['none']:8.1f} tasks/s")
    print(f"  --http, no client:              {rate['idle']:8.1f} tasks/s")
    print(f"  --http, {a.clients:2d} SSE clients:         "
          f"{rate['clients']:8.1f} tasks/s  ({streamed} bytes streamed)")
    cost = 1 - rate["clients"] / rate["idle"]
    print(f"  cost of {a.clients} clients: {100 * cost:.1f}% "
          f"(ratio {rate['clients'] / rate['idle']:.3f}; target under 3%) "
          + ("ok" if cost < 0.03 else "ABOVE TARGET"))
    print(f"  cost of --http with no client: "
          f"{100 * (1 - rate['idle'] / rate['none']):.1f}%")


main()
