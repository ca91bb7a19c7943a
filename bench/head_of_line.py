#!/usr/bin/env python3
"""head_of_line.py: how long one-core tasks wait behind GPU tasks that
cannot run yet (issue 11's case). One `xylem worker --cores 2 --gpus 1`
serves a run whose workflow queues G one-GPU tasks (each `sleep S`)
ahead of 10 one-core tasks: one GPU task runs at a time, and the core it
leaves free should take the one-core tasks at once. Baseline, in the same
run: the 10 one-core tasks alone on the same worker. Both are timed from
the worker's `ready` event to the first one-core task's `dispatched`
event (run history), and the ratio printed; the target is that the first
one-core task starts within 1 s.

usage: bench/head_of_line.py [--gpu-tasks 40] [--sleep 0.2]
(XYLEM_BIN overrides the binary; default build/src/cli/xylem)
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(xylem, work, name, tasks):
    """Runs tasks with one external 2-core, 1-GPU worker; returns the
    seconds from the worker's ready to the first one-core dispatch."""
    wf = os.path.join(work, f"{name}.json")
    db = os.path.join(work, f"{name}.db")
    with open(wf, "w") as f:
        json.dump({"tasks": tasks}, f)
    secret = os.path.join(work, "secret")
    log = os.path.join(work, f"{name}.log")
    # The manager's messages go to a file, which nothing has to keep
    # reading for it to go on.
    with open(log, "w") as err:
        mgr = subprocess.Popen(
            [xylem, "run", wf, "--workers", "0", "--port", "0",
             "--secret-file", secret, "--history", db, "--quiet"],
            stderr=err)
    port, deadline = None, time.monotonic() + 30
    while port is None and time.monotonic() < deadline:
        with open(log) as f:
            for line in f:
                if "waiting for workers on port" in line:
                    port = int(line.split("port")[1].split()[0])
        time.sleep(0.05)
    if port is None:
        mgr.kill()
        sys.exit(f"{name}: the manager did not start")
    worker = subprocess.Popen(
        [xylem, "worker", f"127.0.0.1:{port}", "--secret-file", secret,
         "--cores", "2", "--gpus", "1"], stderr=subprocess.DEVNULL)
    try:
        if mgr.wait(600) != 0:
            sys.exit(f"{name}: the run failed")
    finally:
        for p in (worker, mgr):
            if p.poll() is None:
                p.kill()
            p.wait()
    con = sqlite3.connect(db)
    ready = con.execute("SELECT min(time) FROM worker_events"
                        " WHERE event = 'ready'").fetchone()[0]
    first = con.execute("SELECT min(time) FROM task_events WHERE event ="
                        " 'dispatched' AND tag LIKE 'cpu%'").fetchone()[0]
    return first - ready


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpu-tasks", type=int, default=40)
    ap.add_argument("--sleep", type=float, default=0.2)
    a = ap.parse_args()
    if a.gpu_tasks < 1 or a.sleep < 0:
        ap.error("--gpu-tasks wants 1 or more, --sleep 0 or more")
    xylem = os.environ.get("XYLEM_BIN",
                           os.path.join(TOP, "build/src/cli/xylem"))
    if not os.access(xylem, os.X_OK):
        sys.exit(f"no xylem binary at {xylem} (set XYLEM_BIN)")
    cpu = [{"id": f"cpu{i}", "command": "true"} for i in range(10)]
    gpu = [{"id": f"gpu{i}", "command": f"sleep {a.sleep}",
            "resources": {"cores": 1, "gpus": 1}}
           for i in range(a.gpu_tasks)]
    with tempfile.TemporaryDirectory(prefix="xylem-bench-") as work:
        with open(os.path.join(work, "secret"), "w") as f:
            f.write(os.urandom(16).hex())
        os.chmod(os.path.join(work, "secret"), 0o600)
        alone = run(xylem, work, "alone", cpu)
        behind = run(xylem, work, "behind", gpu + cpu)
    print(f"first one-core task dispatched {behind * 1000:.2f} ms after the"
          f" worker was ready, behind {a.gpu_tasks} GPU tasks of"
          f" {a.sleep} s")
    print(f"baseline (the one-core tasks alone): {alone * 1000:.2f} ms;"
          f" ratio {behind / alone if alone > 0 else float('inf'):.2f}")
    print(f"target: within 1 s: {'met' if behind <= 1 else 'MISSED'}")


if __name__ == "__main__":
    main()
