#!/usr/bin/env python3
"""Elastic scaling against a static allocation and Parsl's htex_auto_scale
(issue 12, "Benchmark"; bench/README.md).

Brings up the test Slurm cluster of tests/slurm/cluster.py (six CPU nodes
c1-c6 of 8 CPUs in partition cpu, two GPU nodes g1, g2 of 8 CPUs and
gpu:2 in partition gpu) and runs three sleep workloads with fixed seeds,
each on three systems one after the other in the same cluster:

  static  one Slurm job per node (all eight) held for the whole run, each
          running one `xylem worker`; a Xylem manager (xylem.Executor,
          workers=0) places the tasks.
  parsl   Parsl's HighThroughputExecutor, strategy htex_auto_scale on
          SlurmProvider: max_blocks = the partition's nodes,
          nodes_per_block=1, strategy_period=5, max_idletime=30. HTEX
          accepts no per-task cores or GPUs (its resource_specification
          takes only `priority`), so each task class has its executor:
          cpu1, cpu4, cpu8 (cores_per_worker 1, 4, 8 on partition cpu,
          max_blocks 6 each) and gpu (partition gpu, cores_per_worker 4,
          available_accelerators 2, max_blocks 2); an executor is made
          only for the classes the workload has. Its workers count the
          host's CPUs, not the job's: PARSL_CORES=$SLURM_CPUS_ON_NODE.
  static-cpu  (not run unless named) static on the six CPU nodes alone,
          for workloads without GPU tasks: Xylem's and Parsl's CPU tasks
          never cause jobs on the GPU nodes, while static's GPU nodes run
          CPU tasks too.
  xylem   xylem.Executor(workers=0, pools=[cpu: 8 cores, partition cpu,
          max 6; gpu: 8 cores and 2 GPUs, partition gpu, max 2]), idle
          timeout 30 s, backlog = max, tasks submitted with their cores
          and GPUs.

Every task is a Python function that sleeps and returns its start and end
(time.time(): every node is this machine). Figures: allocated core-hours
from Slurm's job completion log (each job's CPUs x (end - start)), busy
core-hours (each task's cores x its measured duration), efficiency, time
to solution (the first submission to the last result), and for the bursty
workload, from each burst: the first sbatch (a timestamping sbatch on
PATH), the first task running, and full capacity (48 one-core tasks
running at once: every CPU node busy). Ratios against the baselines of
the same run are printed beside the issue's targets.

Run as root from the top of the repository after a build:

    bench/scaling_workloads.py [--workload bursty|hetero|dag|all]
        [--systems static,parsl,xylem] [--scale F] [--idle S]
        [--json FILE] [--keep]

--scale multiplies every duration and gap (0.1 for a quick check; the
idle time, --idle, 30 s, is not scaled). Every system's jobs are
cancelled after its run and the cluster is stopped however the script
ends (SIGTERM and ^C included). The
Xylem manager's log (XYLEM_LOG, default info) goes to stderr.
"""

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "slurm"))
sys.path.insert(0, str(ROOT / "python"))
os.environ.setdefault("XYLEM_BUILD_DIR", str(ROOT / "build"))
os.environ.setdefault("XYLEM_LOG", "info")

import cluster as slurm_cluster  # noqa: E402

CPU_NODES, GPU_NODES, NODE_CORES, NODE_GPUS = 6, 2, 8, 2
IDLE = 30
FULL = CPU_NODES * NODE_CORES  # full capacity: every CPU node's cores


def sleep_task(seconds):
    """The task: sleeps, and says when it ran."""
    import time as t
    start = t.time()
    t.sleep(seconds)
    return start, t.time()


# ---------------------------------------------------------------- workloads

class Task:
    def __init__(self, key, cores, gpus, duration, phase, at):
        self.key = key
        self.cores = cores
        self.gpus = gpus
        self.duration = duration
        self.phase = phase  # index into the workload's phases
        self.at = at        # seconds after its phase begins

    @property
    def cls(self):
        """The task's class: which Parsl executor runs it."""
        return "gpu" if self.gpus else f"cpu{self.cores}"


class Workload:
    """Tasks in phases. A phase begins at `start` seconds after the run
    began, or, with after=True, once every task of the earlier phases is
    done (a dependency). bursts: the phases whose start is a burst."""

    def __init__(self, name):
        self.name = name
        self.phases = []  # (label, start or None, after)
        self.tasks = []

    def phase(self, label, start=None, after=False):
        self.phases.append((label, start, after))
        return len(self.phases) - 1

    def add(self, cores, gpus, duration, phase, at=0.0):
        self.tasks.append(Task(len(self.tasks), cores, gpus, duration,
                               phase, at))


def bursty(scale, seed=12):
    """Three bursts of 240 one-core 20 s tasks 150 s apart, then a tail:
    16 one-core tasks of 10 to 30 s arriving about 2 s apart, 150 s after
    the third burst."""
    rng = random.Random(seed)
    w = Workload("bursty")
    for b in range(3):
        p = w.phase(f"burst{b + 1}", 150 * b * scale)
        for _ in range(240):
            w.add(1, 0, 20 * scale, p)
    p = w.phase("tail", 450 * scale)
    at = 0.0
    for _ in range(16):
        w.add(1, 0, rng.uniform(10, 30) * scale, p, at)
        at += rng.uniform(1, 3) * scale
    return w


def hetero(scale, seed=13):
    """Four waves 90 s apart, each a seeded mix of 1-core, 4-core,
    whole-node (8-core) and GPU (4 cores and 1 GPU) tasks of 10 to 40 s."""
    rng = random.Random(seed)
    w = Workload("hetero")
    for b in range(4):
        p = w.phase(f"wave{b + 1}", 90 * b * scale)
        mix = [(1, 0)] * rng.randint(24, 64) + [(4, 0)] * rng.randint(4, 10) \
            + [(8, 0)] * rng.randint(1, 4) + [(4, 1)] * rng.randint(2, 6)
        rng.shuffle(mix)
        for cores, gpus in mix:
            w.add(cores, gpus, rng.uniform(10, 40) * scale, p)
    return w


def dag(scale, seed=14):
    """A map of 600 one-core tasks of 5 to 15 s, then one 8-core reduce of
    30 s, then a map of 300 one-core tasks of 5 to 15 s, each stage once
    the one before is done."""
    rng = random.Random(seed)
    w = Workload("dag")
    p = w.phase("map1", 0.0)
    for _ in range(600):
        w.add(1, 0, rng.uniform(5, 15) * scale, p)
    p = w.phase("reduce", after=True)
    w.add(8, 0, 30 * scale, p)
    p = w.phase("map2", after=True)
    for _ in range(300):
        w.add(1, 0, rng.uniform(5, 15) * scale, p)
    return w


WORKLOADS = {"bursty": bursty, "hetero": hetero, "dag": dag}


def drive(w, submit, log):
    """Submits w's tasks at their times through submit(task) -> Future and
    waits for them. Returns (t0, {phase: its start}, {key: (start, end,
    done)})."""
    results = {}
    lock = threading.Lock()
    t0 = time.time()
    starts = {}
    futures = []

    def done(task, f):
        now = time.time()
        try:
            s, e = f.result()
        except BaseException as exc:  # a failure is a result to report
            log(f"task {task.key} failed: {exc!r}")
            s = e = float("nan")
        with lock:
            results[task.key] = (s, e, now)

    for p, (label, start, after) in enumerate(w.phases):
        if after:
            for f in futures:
                f.exception()
            base = time.time()
        else:
            base = t0 + start
        tasks = sorted((t for t in w.tasks if t.phase == p),
                       key=lambda t: t.at)
        first = True
        for t in tasks:
            delay = base + t.at - time.time()
            if delay > 0:
                time.sleep(delay)
            if first:
                starts[label] = time.time()
                log(f"{label}: {len(tasks)} tasks at"
                    f" {starts[label] - t0:.1f} s")
                first = False
            f = submit(t)
            f.add_done_callback(lambda f, t=t: done(t, f))
            futures.append(f)
    for f in futures:
        f.exception()
    deadline = time.time() + 10
    while len(results) < len(futures) and time.time() < deadline:
        time.sleep(0.05)
    return t0, starts, results


# ---------------------------------------------------------------- systems

class Bench:
    """One cluster, the sbatch log, and the jobs of each system."""

    def __init__(self, work, log):
        self.work = work
        self.log = log
        self.cluster = slurm_cluster.SlurmCluster()
        self.spy = work / "spy"
        self.sbatch_log = work / "sbatch.log"
        self.xylem = str(ROOT / "build" / "src" / "cli" / "xylem")

    def start(self):
        self.cluster.start()
        os.environ["SLURM_CONF"] = self.cluster.env["SLURM_CONF"]
        self.spy.mkdir()
        self.sbatch_log.touch()
        real = shutil.which("sbatch")
        f = self.spy / "sbatch"
        # The time it was called, its arguments, then Slurm's own.
        f.write_text("#!/bin/sh\n"
                     f'echo "$(date +%s.%N) $*" >> {self.sbatch_log}\n'
                     f'exec {real} "$@"\n')
        f.chmod(0o755)
        os.environ["PATH"] = f"{self.spy}:{os.environ['PATH']}"
        # Slurm's first scheduling pass comes about 3 s after slurmctld
        # starts: a job run now keeps that out of the first system's run.
        job = self.cluster.sbatch("-p", "cpu", "--wrap", "true")
        self.cluster.wait_job(job, "COMPLETED", 30)

    def sbatch_times(self):
        out = []
        for line in self.sbatch_log.read_text().splitlines():
            try:
                out.append(float(line.split()[0]))
            except (ValueError, IndexError):
                pass
        return out

    def jobs_done(self):
        return len(self.cluster.jobcomp())

    def clear_queue(self, timeout=60):
        """Waits for the queue to empty (the system's own scale-in and
        cancels), then cancels whatever is left."""
        c = self.cluster

        def queued():
            return c.run("squeue", "-h", "-o", "%i %j %T", check=False).strip()
        if not slurm_cluster.wait_until(lambda: not queued(), timeout, 0.5):
            self.log(f"cancelling jobs left: {queued()!r}")
            c.run("scancel", "--full", "-u", "root", check=False)
            if not slurm_cluster.wait_until(lambda: not queued(), 30, 0.5):
                self.log(f"jobs still queued: {queued()!r}")
        # jobcomp is written as each job ends; give the last line a moment.
        time.sleep(1.5)

    def stop(self):
        left = self.cluster.stop()
        if left:
            self.log(f"killed processes that outlived the cluster: {left}")


def secret_file(work):
    f = work / "secret"
    f.write_text(os.urandom(16).hex())
    f.chmod(0o600)
    return f


def xylem_submit(ex):
    return lambda t: ex.options(cores=t.cores, gpus=t.gpus).submit(
        sleep_task, t.duration)


def run_static(bench, w, work, gpu_nodes=True):
    """A manager with no workers of its own, and one job a node holding a
    worker for the whole run: every node, or (gpu_nodes false, for
    workloads without GPU tasks) the CPU nodes alone."""
    import xylem
    secret = secret_file(work)
    ex = xylem.Executor(workers=0, secret_file=str(secret), name="static")
    try:
        nodes = [("cpu", f"c{i}", []) for i in range(1, CPU_NODES + 1)]
        if gpu_nodes:
            nodes += [("gpu", f"g{i}", [f"--gres=gpu:{NODE_GPUS}"])
                      for i in range(1, GPU_NODES + 1)]
        elif any(t.gpus for t in w.tasks):
            raise ValueError("static-cpu: the workload has GPU tasks")
        for part, node, extra in nodes:
            bench.cluster.sbatch(
                "-p", part, "-w", node, "-c", str(NODE_CORES), "--exclusive",
                "-J", f"static-{node}", "-o", str(work / f"static-{node}.log"),
                *extra, "--wrap",
                f"exec {bench.xylem} worker 127.0.0.1:{ex.port}"
                f" --secret-file {secret} --connect-timeout 60")
        want = len(nodes)
        ok = slurm_cluster.wait_until(
            lambda: len(ex.status().get("workers", [])) >= want, 60, 0.2)
        if not ok:
            raise RuntimeError(f"static: {len(ex.status().get('workers', []))}"
                               f" of {want} workers connected in 60 s")
        bench.log(f"static: {want} workers connected")
        return drive(w, xylem_submit(ex), bench.log), {}
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def run_xylem(bench, w, work):
    import xylem
    logs = work / "xylem-jobs"
    logs.mkdir(exist_ok=True)
    pools = [
        xylem.Pool("cpu", NODE_CORES, provider="slurm", partition="cpu",
                   max_workers=CPU_NODES, backlog=CPU_NODES,
                   idle_timeout=IDLE, manager_host="127.0.0.1",
                   log_dir=str(logs)),
        xylem.Pool("gpu", NODE_CORES, gpus=NODE_GPUS, provider="slurm",
                   partition="gpu", max_workers=GPU_NODES, backlog=GPU_NODES,
                   idle_timeout=IDLE, manager_host="127.0.0.1",
                   log_dir=str(logs)),
    ]
    ex = xylem.Executor(workers=0, pools=pools,
                        secret_file=str(secret_file(work)), name="xylem")
    samples = []
    stop = threading.Event()

    def sample():
        # The pools' counts and the plan's last reason, once a second.
        while not stop.wait(1.0):
            try:
                st = ex.status()
            except Exception:
                continue
            samples.append({"t": time.time(), "pools": [
                {k: v for k, v in p.items() if k != "jobs"}
                for p in st.get("pools", [])]})
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        return drive(w, xylem_submit(ex), bench.log), {"samples": samples}
    finally:
        stop.set()
        th.join()
        ex.shutdown(wait=True, cancel_futures=True)


def run_parsl(bench, w, work):
    import parsl
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.launchers import SingleNodeLauncher
    from parsl.providers import SlurmProvider

    classes = sorted({t.cls for t in w.tasks})
    executors = []
    for cls in classes:
        gpu = cls == "gpu"
        cores = 4 if gpu else int(cls[3:])
        provider = SlurmProvider(
            partition="gpu" if gpu else "cpu", nodes_per_block=1,
            init_blocks=0, min_blocks=0,
            max_blocks=GPU_NODES if gpu else CPU_NODES,
            walltime="00:30:00", exclusive=True,
            launcher=SingleNodeLauncher(),
            # process_worker_pool counts the host's CPUs (2 here), not
            # the job's; PARSL_CORES is its override.
            worker_init="export PARSL_CORES=$SLURM_CPUS_ON_NODE",
            scheduler_options=f"#SBATCH --gres=gpu:{NODE_GPUS}" if gpu
            else "")
        kw = {"available_accelerators": NODE_GPUS} if gpu else {}
        executors.append(HighThroughputExecutor(
            label=cls, address="127.0.0.1", cores_per_worker=cores,
            max_workers_per_node=NODE_CORES // cores, provider=provider,
            **kw))
    config = Config(executors=executors, strategy="htex_auto_scale",
                    strategy_period=5, max_idletime=IDLE,
                    run_dir=str(work / "parsl-runinfo"))
    dfk = parsl.load(config)
    try:
        apps = {cls: parsl.python_app(sleep_task, executors=[cls])
                for cls in classes}
        return drive(w, lambda t: apps[t.cls](t.duration), bench.log), \
            {"executors": classes}
    finally:
        dfk.cleanup()
        parsl.clear()


def run_static_cpu(bench, w, work):
    return run_static(bench, w, work, gpu_nodes=False)


SYSTEMS = {"static": run_static, "static-cpu": run_static_cpu,
           "parsl": run_parsl, "xylem": run_xylem}


# ---------------------------------------------------------------- figures

def epoch(stamp):
    return time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))


def allocated(jobs):
    """Core-seconds of the jobs that ran: CPUs x (end - start)."""
    total = 0.0
    for j in jobs:
        try:
            span = epoch(j["EndTime"]) - epoch(j["StartTime"])
            total += int(j.get("ProcCnt", 0)) * max(0.0, span)
        except (KeyError, ValueError):
            pass
    return total


def first_reaching(intervals, level, since):
    """The first time at or after since when level intervals are open at
    once, or None."""
    events = sorted([(s, 1) for s, e in intervals] +
                    [(e, -1) for s, e in intervals], key=lambda x: (x[0], x[1]))
    n = 0
    for t, d in events:
        n += d
        if n >= level and t >= since - 1e-6:
            return t
    return None


def figures(w, t0, starts, results, jobs, sbatches):
    tasks = {t.key: t for t in w.tasks}
    ok = {k: v for k, v in results.items() if v[0] == v[0]}
    busy = sum(tasks[k].cores * (e - s) for k, (s, e, _) in ok.items())
    alloc = allocated(jobs)
    f = {
        "tasks": len(w.tasks), "succeeded": len(ok),
        "jobs": len(jobs),
        "allocated_core_h": alloc / 3600, "busy_core_h": busy / 3600,
        "efficiency": busy / alloc if alloc else None,
        "time_to_solution_s": (max(d for _, _, d in results.values()) - t0)
        if results else None,
        "sbatch_calls": len(sbatches),
        "phases": {},
    }
    spans = [(s, e) for s, e, _ in ok.values()]
    ats = sorted(starts.values())
    for label, at in starts.items():
        until = min([a for a in ats if a > at], default=float("inf"))
        p = [i for i, ph in enumerate(w.phases) if ph[0] == label][0]
        mine = [v for k, v in ok.items() if tasks[k].phase == p]
        later = sorted(t for t in sbatches if at - 0.01 <= t < until)
        first_run = min((s for s, _, _ in mine), default=None)
        full = first_reaching(spans, min(FULL, len(mine)), at)
        f["phases"][label] = {
            "at_s": at - t0,
            "first_sbatch_s": (later[0] - at) if later else None,
            "first_task_running_s": (first_run - at) if first_run else None,
            "full_capacity_s": (full - at) if full else None,
        }
    return f


def fmt(x, spec=".2f"):
    return "-" if x is None else format(x, spec)


def report(name, res, out):
    p = lambda *a: print(*a, file=out, flush=True)  # noqa: E731
    p(f"\n== {name}")
    p(f"{'system':10} {'tasks':>9} {'jobs':>5} {'alloc ch':>9} {'busy ch':>8}"
      f" {'eff':>5} {'time s':>8}")
    for s, r in res.items():
        f = r["figures"]
        p(f"{s:10} {f['succeeded']:>4}/{f['tasks']:<4} {f['jobs']:>5}"
          f" {f['allocated_core_h']:9.3f} {f['busy_core_h']:8.3f}"
          f" {fmt(f['efficiency']):>5} {fmt(f['time_to_solution_s'], '.1f'):>8}")
    if name in ("bursty",):
        p("from each burst (s): first sbatch / first task running /"
          f" {FULL} tasks running")
        for s, r in res.items():
            for label, ph in r["figures"]["phases"].items():
                if not label.startswith("burst"):
                    continue
                p(f"  {s:10} {label}: {fmt(ph['first_sbatch_s'], '.3f'):>7}"
                  f" / {fmt(ph['first_task_running_s'], '.2f'):>6}"
                  f" / {fmt(ph['full_capacity_s'], '.2f'):>6}")
    x = res.get("xylem", {}).get("figures")
    if not x:
        return
    checks = []
    for base, ch_target, t_target in (("static", 0.45, 1.10),
                                      ("static-cpu", 0.45, 1.10),
                                      ("parsl", 0.6, 1.0)):
        b = res.get(base, {}).get("figures")
        if not b:
            continue
        cr = x["allocated_core_h"] / b["allocated_core_h"] \
            if b["allocated_core_h"] else None
        tr = x["time_to_solution_s"] / b["time_to_solution_s"]
        checks.append((f"core-hours xylem/{base}", cr, f"<= {ch_target}",
                       cr is not None and cr <= ch_target))
        checks.append((f"time xylem/{base}", tr, f"<= {t_target}",
                       tr <= t_target))
    if name in ("bursty", "dag"):
        checks.append(("efficiency xylem", x["efficiency"], ">= 0.85",
                       (x["efficiency"] or 0) >= 0.85))
    if name == "bursty":
        for label, ph in x["phases"].items():
            if label.startswith("burst"):
                v = ph["first_sbatch_s"]
                if v is None and (ph["first_task_running_s"] or 9) < 1:
                    continue  # workers still up: nothing to submit
                checks.append((f"first sbatch after {label} (s)", v, "<= 1",
                               v is not None and v <= 1))
    for what, v, target, met in checks:
        p(f"  {what:34} {fmt(v, '.3f'):>7}  target {target:7}"
          f" {'met' if met else 'MISSED'}")


def main():
    global IDLE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="all",
                    choices=["all", *WORKLOADS])
    ap.add_argument("--systems", default="static,parsl,xylem")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--json")
    ap.add_argument("--idle", type=float, default=IDLE,
                    help="idle time before a worker or block is released"
                    " (Xylem's idle_timeout, Parsl's max_idletime; 30)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (logs) and print it")
    args = ap.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    for s in systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s!r}")
    reason = slurm_cluster.check_available()
    if reason:
        print(f"skipped: {reason}", file=sys.stderr)
        return 77
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    IDLE = args.idle

    def on_term(*_):
        raise SystemExit(143)
    signal.signal(signal.SIGTERM, on_term)

    work = Path(tempfile.mkdtemp(prefix="xyscale-"))
    os.chmod(work, 0o755)

    def log(msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr,
              flush=True)
    bench = Bench(work, log)
    out = {"scale": args.scale, "idle": IDLE, "load_before": os.getloadavg(),
           "workloads": {}}
    try:
        bench.start()
        log(f"cluster up: {bench.cluster.conf}; work in {work}")
        for name in names:
            w = WORKLOADS[name](args.scale)
            res = {}
            for s in systems:
                if s == "static-cpu" and any(t.gpus for t in w.tasks):
                    log(f"{name}: static-cpu skipped (GPU tasks)")
                    continue
                d = work / f"{name}-{s}"
                d.mkdir()
                n0 = bench.jobs_done()
                b0 = len(bench.sbatch_times())
                load0 = os.getloadavg()[0]
                log(f"{name} on {s}: {len(w.tasks)} tasks")
                try:
                    (t0, starts, results), extra = SYSTEMS[s](bench, w, d)
                finally:
                    bench.clear_queue()
                jobs = bench.cluster.jobcomp()[n0:]
                sb = bench.sbatch_times()[b0:]
                f = figures(w, t0, starts, results, jobs, sb)
                f["load_1min"] = [load0, os.getloadavg()[0]]
                res[s] = {"figures": f, "jobs": jobs, **extra}
                log(f"{name} on {s}: {f['succeeded']}/{f['tasks']} tasks,"
                    f" {f['allocated_core_h']:.3f} core-h allocated,"
                    f" {f['time_to_solution_s']:.1f} s")
            out["workloads"][name] = res
            report(name, res, sys.stdout)
            if args.json:
                Path(args.json).write_text(json.dumps(out, indent=1))
    finally:
        log("stopping the cluster")
        bench.stop()
        out["load_after"] = os.getloadavg()
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
