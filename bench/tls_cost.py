#!/usr/bin/env python3
"""The cost of TLS (docs/security.md): each figure with TLS against the
same without it (--no-tls), measured in the same run: --rounds (5)
rounds, TLS and plain back to back in each, their order swapped every
round; each round's ratio printed, and the median ratio is the figure.
Without TLS every control message carries a MAC (msgmac.h), so the
plain figures include that.

  noop    --tasks (3,000) `true` tasks through `xylem run --workers 2
          --cores-per-worker 1 --quiet`, timed around the command; the
          CPU time of the run (user + system, of every process it made,
          the tasks' included) is printed too: on a shared machine it
          moves far less than the wall time (tls_cycle.py says where
          the difference goes)
  calls   --calls (10,000) no-op warm Python calls through
          xylem.Executor(workers=2) (all submitted, then all waited for),
          timed from the first submit to the last result, each executor
          in a process of its own, after 200 warm-up calls
  bcast   (with --broadcast, as root) bench/broadcast.py --workers 8
          --only xylem --size-mib S: time over size/bandwidth, with TLS
          and with XYLEM_NO_TLS=1

Targets (issue 14): noop and calls cost under 10%; the broadcast with TLS
at most 1.25 x size/bandwidth at N = 8.

    bench/tls_cost.py
    sudo bench/tls_cost.py --broadcast --size-mib 128
"""

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
XYLEM = os.environ.get("XYLEM_BIN", str(REPO / "build/src/cli/xylem"))

CALLS = r'''
import sys, time, xylem
def noop(x):
    return x
n, tls = int(sys.argv[1]), sys.argv[2] == "1"
with xylem.Executor(workers=2, tls=tls) as ex:
    for f in [ex.submit(noop, i) for i in range(200)]:
        f.result()
    t0 = time.monotonic()
    fs = [ex.submit(noop, i) for i in range(n)]
    for f in fs:
        f.result()
    print(time.monotonic() - t0)
'''


CPU = {True: [], False: []}  # noop_once's CPU seconds, by TLS or not


def env_for(tls, quiet=True):
    env = dict(os.environ)
    for k in ("XYLEM_TLS_CA", "XYLEM_TLS_DIR", "XYLEM_NO_TLS"):
        env.pop(k, None)
    if not tls:
        env["XYLEM_NO_TLS"] = "1"
    if quiet:
        env.setdefault("XYLEM_LOG", "error")
    return env


def noop_once(wf, tls):
    argv = [XYLEM, "run", wf, "--workers", "2", "--cores-per-worker", "1",
            "--quiet"] + ([] if tls else ["--no-tls"])
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    subprocess.run(argv, check=True, env=env_for(tls),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[tls].append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    return wall


def calls_once(n, tls):
    env = env_for(tls)
    env["PYTHONPATH"] = str(REPO / "python") + (
        ":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("XYLEM_BUILD_DIR", str(REPO / "build"))
    out = subprocess.run([sys.executable, "-c", CALLS, str(n),
                          "1" if tls else "0"], check=True, env=env,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def bcast_once(size_mib, tls):
    # Its cluster waits for the workers' info lines: the log as it is.
    out = subprocess.run([sys.executable, str(REPO / "bench/broadcast.py"),
                          "--workers", "8", "--only", "xylem",
                          "--size-mib", str(size_mib)],
                         env=env_for(tls, quiet=False), capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise RuntimeError(f"broadcast.py: exit {out.returncode}:\n"
                           f"{out.stdout}{out.stderr[-3000:]}")
    # The row for N = 8: "  8    limit |  secs     x   want".
    for line in out.stdout.splitlines():
        f = line.split()
        if len(f) >= 5 and f[0] == "8" and f[2] == "|":
            return float(f[4]), line
    raise RuntimeError("no N = 8 row in:\n" + out.stdout)


def rounds_of(rounds, fn, *args):
    """Runs TLS and plain alternately, the order swapped every round (so
    that a drift of the machine's load weighs on both alike), and prints
    each round. Returns the medians of the TLS times, of the plain ones,
    and of the rounds' own ratios: the ratio is the figure, each round's
    pair having run back to back."""
    t, p, r = [], [], []
    for i in range(rounds):
        if i % 2 == 0:
            a = fn(*args, True)
            b = fn(*args, False)
        else:
            b = fn(*args, False)
            a = fn(*args, True)
        t.append(a)
        p.append(b)
        r.append(a / b)
        print(f"    round {i + 1}: TLS {a:.3f} s, plain {b:.3f} s,"
              f" ratio {a / b:.3f}", flush=True)
    return statistics.median(t), statistics.median(p), statistics.median(r)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=3000)
    ap.add_argument("--calls", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", choices=("noop", "calls"),
                    help="run only that figure (and --broadcast)")
    ap.add_argument("--broadcast", action="store_true",
                    help="also the broadcast at N = 8 (root, netns)")
    ap.add_argument("--size-mib", type=int, default=128)
    a = ap.parse_args(argv)
    ok = True
    with tempfile.TemporaryDirectory(prefix="xylem-tls-bench-") as d:
        wf = os.path.join(d, "noop.json")
        with open(wf, "w") as f:
            json.dump({"tasks": [{"id": f"t{i}", "command": "true"}
                                 for i in range(a.tasks)]}, f)
        if a.only in (None, "noop"):
            print(f"no-op tasks ({a.tasks}):", flush=True)
            t, p, r = rounds_of(a.rounds, noop_once, wf)
            ok &= r < 1.10
            print(f"no-op tasks ({a.tasks}, median of {a.rounds}): TLS "
                  f"{a.tasks / t:8.1f} tasks/s, plain {a.tasks / p:8.1f}"
                  f" tasks/s; time ratio {r:.3f} (target < 1.10)")
            ct, cp = statistics.median(CPU[True]), \
                statistics.median(CPU[False])
            print(f"  CPU of a run (median): TLS {ct:.2f} s, plain {cp:.2f}"
                  f" s; ratio {ct / cp:.3f}, TLS's "
                  f"{(ct - cp) / a.tasks * 1e6:.0f} us a task")
        if a.only in (None, "calls"):
            print(f"warm calls ({a.calls}):", flush=True)
            t, p, r = rounds_of(a.rounds, calls_once, a.calls)
            ok &= r < 1.10
            print(f"warm calls ({a.calls}, median of {a.rounds}): TLS "
                  f"{a.calls / t:8.1f} calls/s, plain {a.calls / p:8.1f}"
                  f" calls/s; time ratio {r:.3f} (target < 1.10)")
    if a.broadcast:
        (t, tline), (p, pline) = bcast_once(a.size_mib, True), \
            bcast_once(a.size_mib, False)
        ok &= t <= 1.25
        print(f"broadcast N = 8 ({a.size_mib} MiB): TLS {t:.2f} x "
              f"size/bandwidth, plain {p:.2f}; ratio {t / p:.3f}"
              f" (target: TLS <= 1.25)")
        print(f"  TLS row:   {tline.strip()}\n  plain row: {pline.strip()}")
    print("all targets met" if ok else "SOME TARGET MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
