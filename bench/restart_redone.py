#!/usr/bin/env python3
"""restart_redone.py: the work redone after a manager is killed (issue 13,
docs/durability.md).

A workflow of --tasks (2,000) sleep tasks (independent ones plus chains of
four, each link reading the output of the one before; every sleep 0.1 to
0.5 s, seed 13), run by `xylem run WF --workers 0 --port P --secret-file S
[--journal DIR]` with --workers (8) external `xylem worker --cores C` on
this machine. When half the tasks have finished, the manager is killed
with SIGKILL, then started again (same port, same secret, same journal)
until the workflow ends. Every task appends "start NAME" and "end NAME"
to a marks file outside its sandbox, so each execution is counted. Three
modes, one after the other in this run:

  xylem    on a journal; the workers keep the manager's lease (300 s), so
           they keep their running tasks and come back to the new manager
  hq-like  on a journal, workers with --lease 0: they die with their
           manager and their running tasks with them; N new workers (same
           names) serve the second manager. HyperQueue's semantics:
           finished tasks kept, running tasks run again
  none     no journal: everything runs again, on N new workers

For each: executions beyond one a task, the task-seconds redone (a task
started k times counts k - 1 times its sleep), the wall time from the
first manager's start to the second's end, and the redone work against
"none" and "hq-like" of this run. Any task run twice in the xylem mode
is a bug: the script says so, keeps the marks and the managers' logs
(XYLEM_LOG=info) and exits 1, as it does when an output is wrong or a
task never ended.

usage: bench/restart_redone.py [--tasks 2000] [--workers 8] [--cores 2]
                               [--modes xylem,hq-like,none] [--json F]
                               [--keep]
(XYLEM_BIN overrides build/src/cli/xylem)
"""

import argparse
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
SEED = 13
CHAIN = 4


def xylem_binary():
    path = os.environ.get("XYLEM_BIN") or str(TOP / "build/src/cli/xylem")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        sys.exit(f"no xylem binary at {path} (set XYLEM_BIN)")
    return os.path.abspath(path)


def make_workflow(n, rng):
    """Returns (units, sleeps): units are lists of task names, a chain or
    a lone task, in a shuffled order; sleeps maps a name to its seconds.
    A fifth of the tasks are in chains of four."""
    n_chains = n // 5 // CHAIN
    units = [[f"c{c}_{k}" for k in range(CHAIN)] for c in range(n_chains)]
    units += [[f"t{i}"] for i in range(n - n_chains * CHAIN)]
    rng.shuffle(units)
    sleeps = {name: rng.randint(10, 50) / 100 for u in units for name in u}
    return units, sleeps


def write_workflow(path, units, sleeps, outdir, marks):
    tasks = []
    for unit in units:
        prev = None
        for name in unit:
            head = f"echo start {name} >> {marks}; sleep {sleeps[name]:.2f};"
            tail = f" echo end {name} >> {marks}"
            t = {"id": name,
                 "outputs": [{"path": str(outdir / name), "as": "out"}]}
            if prev is None:
                t["command"] = head + f" echo {name} > out;" + tail
            else:
                t["command"] = head + f" cat in > out; echo {name} >> out;" \
                    + tail
                t["inputs"] = [{"path": str(outdir / prev), "as": "in"}]
            tasks.append(t)
            prev = name
    Path(path).write_text(json.dumps({"tasks": tasks}))


def expected_outputs(units):
    for unit in units:
        for k, name in enumerate(unit):
            yield name, "".join(f"{x}\n" for x in unit[:k + 1])


class Marks:
    """The marks file, read as it grows."""

    def __init__(self, path):
        self.path = path
        self.off = 0
        self.ends = 0
        self.rest = b""

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except FileNotFoundError:
            return self.ends
        self.off += len(data)
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        self.ends += sum(1 for x in lines if x.startswith(b"end "))
        return self.ends


def counts(path):
    starts, ends = {}, {}
    for line in Path(path).read_text().splitlines():
        kind, _, name = line.partition(" ")
        d = starts if kind == "start" else ends
        d[name] = d.get(name, 0) + 1
    return starts, ends


def wait_line(logpath, proc, pattern, timeout):
    rx = re.compile(pattern)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = rx.search(Path(logpath).read_text(errors="replace"))
        if m:
            return m
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    sys.exit(f"no /{pattern}/ from {proc.args[1]} in {logpath}:\n" +
             Path(logpath).read_text(errors="replace")[-3000:])


class Run:
    """One mode: its directory, processes and logs."""

    def __init__(self, xylem, mode, d, wf, args):
        self.xylem, self.mode, self.d, self.wf, self.a = \
            xylem, mode, d, wf, args
        self.env = {**os.environ, "XYLEM_LOG": "info",
                    "TMPDIR": str(d / "tmp")}
        # What is measured is the work redone, not TLS: plain TCP, as
        # before TLS was the default (the workers had no CA to verify
        # the manager with, and never came).
        if not os.environ.get("XYLEM_TLS_CA"):
            self.env["XYLEM_NO_TLS"] = "1"
        self.secret = d / "secret"
        self.secret.write_text(secrets.token_hex(32) + "\n")
        self.secret.chmod(0o600)
        (d / "tmp").mkdir()
        self.workers = []
        self.managers = []
        self.port = 0

    def manager(self, gen):
        cmd = [self.xylem, "run", self.wf, "--workers", "0", "--port",
               str(self.port), "--secret-file", str(self.secret)]
        if self.mode != "none":
            cmd += ["--journal", str(self.d / "journal")]
        log = self.d / f"manager{gen}.log"
        with open(log, "w") as f:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f,
                                 stderr=subprocess.STDOUT, env=self.env,
                                 start_new_session=True)
        self.managers.append(p)
        m = wait_line(log, p, r"waiting for workers on port (\d+)", 60)
        self.port = int(m.group(1))
        return p, log

    def start_workers(self, gen):
        for i in range(self.a.workers):
            cmd = [self.xylem, "worker", f"127.0.0.1:{self.port}",
                   "--secret-file", str(self.secret), "--cores",
                   str(self.a.cores), "--name", f"w{i}", "--cache",
                   str(self.d / f"cache{gen}_{i}")]
            if self.mode == "hq-like":
                cmd += ["--lease", "0"]
            with open(self.d / f"worker{gen}_{i}.log", "w") as f:
                self.workers.append(subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=f,
                    stderr=subprocess.STDOUT, env=self.env,
                    start_new_session=True))

    def wait_workers(self, timeout):
        """Waits for every worker started so far to exit; kills (by pid)
        those still there after timeout. Returns how many it killed."""
        end = time.monotonic() + timeout
        killed = 0
        for w in self.workers:
            try:
                w.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait(10)
                killed += 1
        return killed

    def kill_all(self):
        """Whatever of this run is still there (after an error)."""
        for w in self.managers + self.workers:
            if w.poll() is None:
                w.kill()
                w.wait(10)


def run_mode(xylem, mode, work, units, sleeps, args):
    d = work / mode
    d.mkdir()
    outdir = d / "out"
    outdir.mkdir()
    marks = d / "marks"
    wf = d / "wf.json"
    write_workflow(wf, units, sleeps, outdir, marks)
    n = len(sleeps)
    r = Run(xylem, mode, d, str(wf), args)
    try:
        return measure(r, mode, d, outdir, marks, units, sleeps, n, args)
    finally:
        r.kill_all()


def measure(r, mode, d, outdir, marks, units, sleeps, n, args):
    t0 = time.monotonic()
    m1, log1 = r.manager(1)
    r.start_workers(1)
    watch = Marks(marks)
    while watch.poll() < n // 2:
        if m1.poll() is not None:
            sys.exit(f"{mode}: the first manager exited ({m1.returncode})"
                     f" before half the tasks ended; see {log1}")
        time.sleep(0.02)
    os.kill(m1.pid, signal.SIGKILL)
    m1.wait(30)
    t_kill = time.monotonic()
    ended_at_kill = watch.poll()
    first = r.workers[:]
    if mode != "xylem":
        # These workers have no lease: they stop with their manager.
        stuck = r.wait_workers(30)
        if stuck:
            print(f"  {mode}: {stuck} workers did not stop with their "
                  "manager (killed)", file=sys.stderr)
    t_restart = time.monotonic()
    m2, log2 = r.manager(2)
    if mode != "xylem":
        r.start_workers(2)
    try:
        rc = m2.wait(args.timeout)
    except subprocess.TimeoutExpired:
        m2.kill()
        m2.wait(10)
        sys.exit(f"{mode}: the second manager did not end within "
                 f"{args.timeout} s; see {log2}")
    t1 = time.monotonic()
    if rc != 0:
        sys.exit(f"{mode}: the second manager exited {rc}; see {log2}:\n" +
                 log2.read_text(errors="replace")[-3000:])
    stuck = r.wait_workers(30)
    starts, ends = counts(marks)
    wrong = [name for name, text in expected_outputs(units)
             if not (outdir / name).exists()
             or (outdir / name).read_text() != text]
    missing = [name for name in sleeps if ends.get(name, 0) < 1]
    extra = sum(starts.values()) - n
    twice = {name: k for name, k in starts.items() if k > 1}
    # The run's summary, less the log line printed inside it.
    text = re.sub(r"\d{4}-\d\d-\d\d [\d:.]+ \w+ run: file bodies:[^\n]*\n",
                  "", log2.read_text(errors="replace"))
    summary = [line.strip() for line in text.splitlines()
               if line.startswith("xylem run: ")]
    waited = [line.split(" journal: ", 1)[1] for line in text.splitlines()
              if " journal: the wait for workers" in line]
    return {
        "mode": mode,
        "tasks": n,
        "ended_at_kill": ended_at_kill,
        "executions": sum(starts.values()),
        "executions_beyond": extra,
        "tasks_run_again": len(twice),
        "ended_twice": sum(1 for k in ends.values() if k > 1),
        "task_seconds_total": round(sum(sleeps.values()), 2),
        "task_seconds_redone": round(sum((k - 1) * sleeps[name]
                                         for name, k in twice.items()), 2),
        "wall_s": round(t1 - t0, 2),
        "before_kill_s": round(t_kill - t0, 2),
        "after_restart_s": round(t1 - t_restart, 2),
        "outputs_wrong": len(wrong),
        "tasks_never_ended": len(missing),
        "workers_killed_at_end": stuck,
        "first_workers": len(first),
        "summary": summary[-1] if summary else "",
        "adoption": waited[-1] if waited else "",
        "twice": sorted(twice)[:20],
    }


def ratio(a, b):
    return f"{a / b:.3f}" if b else "n/a"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--modes", default="xylem,hq-like,none")
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds the second manager may take")
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--keep", action="store_true",
                    help="keep the working directory")
    args = ap.parse_args()
    modes = args.modes.split(",")
    for m in modes:
        if m not in ("xylem", "hq-like", "none"):
            ap.error(f"unknown mode {m}")
    xylem = xylem_binary()
    units, sleeps = make_workflow(args.tasks, random.Random(SEED))
    work = Path(tempfile.mkdtemp(prefix="xylem-restart-"))
    keep = args.keep
    results = {}
    try:
        print(f"{args.tasks} tasks ({sum(len(u) > 1 for u in units)} chains"
              f" of {CHAIN}), {sum(sleeps.values()):.1f} task-s of sleep;"
              f" {args.workers} workers x {args.cores} cores; the manager"
              f" killed at {args.tasks // 2} tasks ended; load"
              f" {os.getloadavg()[0]:.1f}", flush=True)
        for mode in modes:
            res = run_mode(xylem, mode, work, units, sleeps, args)
            results[mode] = res
            print(f"  {mode:8s} executions beyond {res['tasks']}:"
                  f" {res['executions_beyond']:5d}  task-s redone:"
                  f" {res['task_seconds_redone']:7.2f}  wall:"
                  f" {res['wall_s']:6.2f} s (killed at"
                  f" {res['before_kill_s']:.2f} s, {res['ended_at_kill']}"
                  f" ended; second run {res['after_restart_s']:.2f} s)",
                  flush=True)
            if res["summary"]:
                print(f"           {res['summary']}", flush=True)
            if res["outputs_wrong"] or res["tasks_never_ended"]:
                print(f"  {mode}: {res['outputs_wrong']} outputs wrong,"
                      f" {res['tasks_never_ended']} tasks never ended",
                      flush=True)
                keep = True
            if mode == "xylem" and res["tasks_run_again"]:
                print(f"  BUG: {res['tasks_run_again']} tasks ran more than"
                      f" once in the xylem mode: {res['twice']}; marks and"
                      f" managers' logs in {work / mode}", flush=True)
                keep = True
        print("redone work (task-s) against the same run's:")
        none = results.get("none", {}).get("task_seconds_redone", 0)
        hq = results.get("hq-like", {}).get("task_seconds_redone", 0)
        for mode, res in results.items():
            x = res["task_seconds_redone"]
            print(f"  {mode:8s} {x:7.2f}  / none {ratio(x, none):>6s}"
                  f"  / hq-like {ratio(x, hq):>6s}")
        print(f"load at the end {os.getloadavg()[0]:.1f}")
        if args.json:
            Path(args.json).write_text(json.dumps(
                {"args": vars(args), "seed": SEED, "modes": results},
                indent=1) + "\n")
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    bug = results.get("xylem", {}).get("tasks_run_again", 0)
    bad = any(r["outputs_wrong"] or r["tasks_never_ended"]
              for r in results.values())
    return 1 if bug or bad else 0


if __name__ == "__main__":
    sys.exit(main())
