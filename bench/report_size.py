#!/usr/bin/env python3
"""report_size.py: the time `xylem report` takes and the size of the page
it writes, for synthetic run histories of 100,000 and 1,000,000 tasks
(docs/observability.md, "Run report and task output").

Each history is written with Python's sqlite3 in the schema of
docs/history.md, as a run would have written it: for each task a
submitted, dispatched, done and returned event (about 5% of tasks fail,
with 200 bytes of output; 1% are retried first, with a retry event and a
second dispatch), its tag one of 40 workflow steps ("align-17",
"sort-3", ...) or 10 Python functions, 64 workers, durations drawn from a
log-normal per tag, and one transfer per 10 tasks (manager, peer and URL
sources). Seed 7. The report is timed from the command's start to its
exit (best of --rounds); the page's size is printed beside the history's.
The baseline is the smaller history in the same run: the page's size
must stay flat (it does not grow with the task count) and the time grow
at most linearly.

usage: bench/report_size.py [--tasks 100000,1000000] [--rounds 1] [--keep]
(XYLEM_BIN overrides build/src/cli/xylem)
"""

import argparse
import math
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
XYLEM = os.environ.get("XYLEM_BIN", str(REPO / "build/src/cli/xylem"))

SCHEMA = """
CREATE TABLE runs (id INTEGER PRIMARY KEY, manager TEXT, started REAL,
                   ended REAL);
CREATE TABLE task_events (run INTEGER, time REAL, task_id INTEGER, tag TEXT,
  event TEXT, worker TEXT, attempt INTEGER, result INTEGER,
  exit_code INTEGER, detail TEXT, output TEXT);
CREATE TABLE worker_events (run INTEGER, time REAL, worker TEXT, event TEXT,
  detail TEXT);
CREATE TABLE transfers (run INTEGER, time REAL, object TEXT, source TEXT,
  dest TEXT, bytes INTEGER, seconds REAL, status TEXT, path TEXT, kind TEXT);
CREATE INDEX task_events_task ON task_events(task_id);
CREATE INDEX task_events_run_task ON task_events(run, task_id);
CREATE INDEX worker_events_worker ON worker_events(worker);
"""


def make_history(path, n, rng):
    steps = ["step" + chr(97 + s // 26) + chr(97 + s % 26) for s in range(40)]
    funcs = [f"analysis.fn_{f}" for f in range(10)]
    tags = steps + funcs
    mu = {t: rng.uniform(-3, 2) for t in tags}
    workers = [f"node{w:02d}:{4000 + w}" for w in range(64)]
    free = [0.0] * len(workers)
    t0 = 1.8e9
    con = sqlite3.connect(path)
    con.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
                      + SCHEMA)
    con.execute("INSERT INTO runs VALUES (1, 'bench', ?, NULL)", (t0,))
    con.executemany("INSERT INTO worker_events VALUES (1, ?, ?, 'ready',"
                    " NULL)", [(t0, w) for w in workers])
    rows, xfers = [], []
    out = "x" * 180 + "\nerror: bad input\n"
    for i in range(1, n + 1):
        base = tags[i % len(tags)]
        tag = f"{base}-{i}" if base.startswith("step") else base
        w = i % len(workers)
        sub = t0 + i * 0.001
        start = max(sub, free[w])
        dur = math.exp(rng.gauss(mu[base], 0.6))
        rows.append((1, sub, i, tag, "submitted", None, 0, 0, 0, "cmd",
                     None))
        attempt = 1
        if rng.random() < 0.01:
            rows.append((1, start, i, tag, "dispatched", workers[w], 1, 0,
                         0, "inputs 1, cached 0", None))
            start += dur
            rows.append((1, start, i, tag, "retry", workers[w], 1, 1, 1,
                         "exited with status 1", out))
            attempt = 2
        rows.append((1, start, i, tag, "dispatched", workers[w], attempt,
                     0, 0, "inputs 1, cached %d" % (rng.random() < 0.8),
                     None))
        end = start + dur
        free[w] = end
        failed = rng.random() < 0.05
        rows.append((1, end, i, tag, "done", workers[w], attempt,
                     1 if failed else 0, 2 if failed else 0,
                     "exited with status 2" if failed else None,
                     out if failed else None))
        rows.append((1, end, i, tag, "returned", workers[w], attempt,
                     1 if failed else 0, 2 if failed else 0, None, None))
        if i % 10 == 0:
            src = rng.choice(["manager", workers[(w + 1) % 64],
                              "https://data.example/x"])
            xfers.append((1, start, "%064x" % i, src, workers[w],
                          rng.randint(1, 10 ** 8), dur / 10, "ok",
                          f"/data/f{i}", None))
        if len(rows) > 200000:
            con.executemany("INSERT INTO task_events VALUES"
                            " (?,?,?,?,?,?,?,?,?,?,?)", rows)
            rows = []
    con.executemany("INSERT INTO task_events VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    rows)
    con.executemany("INSERT INTO transfers VALUES (?,?,?,?,?,?,?,?,?,?)",
                    xfers)
    con.execute("UPDATE runs SET ended = ?", (max(free),))
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def time_report(db, page, rounds):
    best = None
    for _ in range(rounds):
        t = time.monotonic()
        r = subprocess.run([XYLEM, "report", str(db), "-o", str(page)],
                           capture_output=True, text=True)
        dt = time.monotonic() - t
        if r.returncode != 0:
            sys.exit(f"xylem report failed: {r.stderr}")
        best = dt if best is None else min(best, dt)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default="100000,1000000")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="xylem-report-bench-"))
    results = []
    try:
        for n in [int(x) for x in a.tasks.split(",")]:
            db, page = tmp / f"h{n}.db", tmp / f"r{n}.html"
            t = time.monotonic()
            make_history(db, n, random.Random(7))
            made = time.monotonic() - t
            secs = time_report(db, page, a.rounds)
            results.append((n, secs, page.stat().st_size,
                            db.stat().st_size))
            print(f"{n:>9} tasks: history {db.stat().st_size / 1e6:8.1f} MB"
                  f" (written in {made:.1f} s); xylem report {secs:6.2f} s"
                  f" ({secs / n * 1e6:.2f} us a task); page"
                  f" {page.stat().st_size / 1e3:7.1f} kB", flush=True)
        if len(results) > 1:
            (n0, s0, p0, _), (n1, s1, p1, _) = results[0], results[-1]
            print(f"ratio {n1 // n0}x the tasks: time {s1 / s0:.2f}x,"
                  f" page size {p1 / p0:.2f}x (target: time <= {n1 / n0:.0f}x,"
                  f" page flat)")
    finally:
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


main()
