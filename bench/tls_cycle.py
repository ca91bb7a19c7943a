#!/usr/bin/env python3
"""Where TLS's cost on no-op command tasks goes (bench/README.md, "TLS on
no-op tasks: where the time goes"): runs `xylem run` of --tasks (3,000)
`true` tasks on two one-core workers, with TLS and with --no-tls, under
`perf record` of a few syscall tracepoints (read, write, clone3, wait4,
epoll_wait: cheap, unlike strace, which stops the process at every
syscall), and prints, for each, the median of each step of a task's
cycle on a worker, and of the manager's turn:

  A  worker writes TASK_DONE -> it reads its next TASK (the round trip
     through the manager: its wakeup, its turn, the worker's wakeup)
  M  manager reads TASK_DONE -> it writes the next TASK (its turn alone:
     open the record, handle it, schedule, seal the TASK)
  B  worker reads TASK -> clone3 of the task's process
  E  wait4 of the finished task -> write of TASK_DONE
  cycle  one TASK_DONE write to the next, on a worker

and per task: the worker's and the manager's epoll_wait calls, reads and
writes, and the CPU time (user + system) of the whole run. Needs perf
and the right to trace (root).

    sudo bench/tls_cycle.py [--tasks 3000] [--rounds 2]
"""

import argparse
import collections
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
XYLEM = os.environ.get("XYLEM_BIN", str(REPO / "build/src/cli/xylem"))
EVENTS = ("syscalls:sys_exit_read,syscalls:sys_enter_write,"
          "syscalls:sys_enter_clone3,syscalls:sys_exit_wait4,"
          "syscalls:sys_enter_epoll_wait")


def record(wf, tls, d):
    data = os.path.join(d, "perf.data")
    env = dict(os.environ, XYLEM_LOG="error")
    env.pop("XYLEM_NO_TLS", None)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["perf", "record", "-q", "-o", data, "-e", EVENTS, "--",
                    XYLEM, "run", wf, "--workers", "2", "--cores-per-worker",
                    "1", "--quiet"] + ([] if tls else ["--no-tls"]),
                   env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    out = subprocess.run(["perf", "script", "-i", data, "-F",
                          "pid,time,event,trace"], capture_output=True,
                         text=True, check=True).stdout
    ev = collections.defaultdict(list)
    for line in out.splitlines():
        f = line.split(None, 3)
        if len(f) < 3:
            continue
        ev[f[0]].append((float(f[1].rstrip(":")) * 1e6,
                         f[2].rstrip(":").split(":")[-1],
                         f[3].strip() if len(f) > 3 else ""))
    return ev, cpu


def analyse(ev):
    """The steps of each cycle, from each process's own sequence of
    events. A TASK is the read that follows a worker's TASK_DONE write,
    and is followed by a clone3; TASK_DONE is the write after a wait4."""
    workers = [p for p, e in ev.items()
               if sum(1 for x in e if x[1] == "sys_enter_clone3") > 10]
    rest = [p for p in ev if p not in workers]
    mgr = max(rest, key=lambda p: sum(1 for x in ev[p]
                                      if x[1] == "sys_enter_write"))
    s = collections.defaultdict(list)
    counts = collections.Counter()
    for p in workers:
        st = {}
        for ts, name, _ in ev[p]:
            counts["worker " + name] += 1
            if name == "sys_enter_write" and "E" in st:
                s["E wait4 -> TASK_DONE"].append(ts - st.pop("E"))
                if "cyc" in st:
                    s["cycle"].append(ts - st["cyc"])
                st = {"A": ts, "cyc": ts}
            elif name == "sys_exit_read" and "A" in st:
                st["B"] = ts
                st["A_end"] = ts
            elif name == "sys_enter_clone3" and "B" in st:
                s["A TASK_DONE -> TASK"].append(st.pop("A_end") - st.pop("A"))
                s["B TASK -> clone3"].append(ts - st.pop("B"))
            elif name == "sys_exit_wait4":
                st["E"] = ts
    last = None
    for ts, name, _ in ev[mgr]:
        counts["manager " + name] += 1
        if name == "sys_exit_read":
            last = ts
        elif name == "sys_enter_write" and last is not None:
            s["M manager read -> write"].append(ts - last)
            last = None
        elif name == "sys_enter_epoll_wait":
            last = None
    return s, counts


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="xylem-tls-cycle-") as d:
        wf = os.path.join(d, "noop.json")
        with open(wf, "w") as f:
            json.dump({"tasks": [{"id": f"t{i}", "command": "true"}
                                 for i in range(a.tasks)]}, f)
        for r in range(a.rounds):
            for tls in ((True, False) if r % 2 == 0 else (False, True)):
                ev, cpu = record(wf, tls, d)
                s, counts = analyse(ev)
                print(f"round {r + 1}, {'TLS' if tls else 'plain'}: CPU "
                      f"{cpu:.2f} s ({cpu / a.tasks * 1e6:.0f} us a task)")
                for k in sorted(s):
                    v = s[k]
                    print(f"    {k:26} median {statistics.median(v):7.1f} us"
                          f"  mean {statistics.fmean(v):7.1f} us"
                          f"  ({len(v)})")
                per = {k: v / a.tasks for k, v in counts.items()}
                print("    per task: " + ", ".join(
                    f"{k.replace('sys_', '')} {v:.2f}"
                    for k, v in sorted(per.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
