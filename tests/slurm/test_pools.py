"""Pools through the real Slurm (docs/scaling.md, "Pools, jobs and
providers"): the manager's own sbatch, squeue and scancel against the
test cluster. A burst asks for exactly the jobs it needs and leaves none
behind; GPU tasks cause only GPU-pool jobs; an unfit task fails at once;
scancel of running workers and a drain lose nothing and spend no retry;
a manager killed with SIGKILL leaves no job queued or running (its
watchdog); a standing manager shows its pool's jobs and releases idle
workers; a worker that cannot start and a refused sbatch say why.

sbatch, squeue and scancel are reached through spies on PATH that log
each call (Spy) before they run the real command."""

import json
import os
import random
import re
import shutil
import signal
import textwrap

import pytest

import cluster
from helpers import SLOW, task, write_workflow

TOOLS = ("sbatch", "squeue", "scancel")


class Spy:
    """A directory of sbatch, squeue and scancel that log their
    arguments, one call a line, to calls.log, then run Slurm's own.
    slow_sbatch(s) makes sbatch take s seconds more, and log "+" when
    it starts and "-" when it ends to running.log."""

    def __init__(self, tmp_path):
        self.dir = tmp_path / "spy"
        self.dir.mkdir()
        self.log = tmp_path / "calls.log"
        self.log.touch()
        self.running = tmp_path / "running.log"
        for tool in TOOLS:
            self.write(tool, f'exec {shutil.which(tool)} "$@"')

    def write(self, tool, run):
        f = self.dir / tool
        f.write_text(f'#!/bin/sh\necho "{tool} $*" >> {self.log}\n{run}\n')
        f.chmod(0o755)

    def slow_sbatch(self, seconds):
        self.write("sbatch", f"echo + >> {self.running}; sleep {seconds};"
                   f' {shutil.which("sbatch")} "$@"; rc=$?;'
                   f" echo - >> {self.running}; exit $rc")

    def most_at_once(self):
        """The most sbatch calls under way at once (slow_sbatch)."""
        n = most = 0
        for c in self.running.read_text().split():
            n += 1 if c == "+" else -1
            most = max(most, n)
        return most

    def calls(self, tool):
        return [line.split(" ", 1)[1] if " " in line else ""
                for line in self.log.read_text().splitlines()
                if line.split(" ", 1)[0] == tool]


class Pools:
    """Runs xylem with pools against the cluster, through the spies."""

    def __init__(self, slurm, xylem, tmp_path, secret_file):
        self.slurm = slurm
        self.xylem = xylem
        self.tmp = tmp_path
        self.secret_file = secret_file
        self.spy = Spy(tmp_path)
        self.logs = tmp_path / "jobs"
        self.logs.mkdir()
        self.env = dict(xylem.env, SLURM_CONF=slurm.env["SLURM_CONF"],
                        XYLEM_LOG="info",
                        PATH=f"{self.spy.dir}:{os.environ['PATH']}")

    def spec(self, name, cores, **keys):
        """A --pool SPEC for the slurm provider: partition NAME unless
        given, the jobs' logs in tmp_path/jobs."""
        keys = {"name": name, "provider": "slurm", "partition": name,
                "cores": cores, "manager-host": "127.0.0.1",
                "log-dir": self.logs, **keys}
        return ",".join(f"{k}={v}" for k, v in keys.items())

    def run(self, wf, *specs, timeout=60):
        args = ["run", wf, "--quiet", "--secret-file", self.secret_file]
        for s in specs:
            args += ["--pool", s]
        return self.xylem.run(*args, timeout=timeout, env=self.env)

    def start(self, *args):
        return self.xylem.start(*map(str, args), env=self.env)

    def job_log(self, name):
        try:
            return (self.logs / f"{name}.log").read_text()
        except OSError:
            return "(no log)"

    def ended(self, prefix):
        """The job completion log's entries for jobs named prefix*."""
        return [j for j in self.slurm.jobcomp()
                if j["Name"].startswith(prefix)]

    def queued(self, prefix):
        """Jobs named prefix* that are still in the queue, any state."""
        out = self.slurm.run("squeue", "-h", "-o", "%i %j %T", check=False)
        return [line for line in out.splitlines()
                if line.split()[1].startswith(prefix)]

    def wait_no_jobs(self, prefix, timeout=10):
        if not cluster.wait_until(lambda: not self.queued(prefix),
                                  timeout * SLOW, 0.2):
            pytest.fail(f"jobs of {prefix} still queued after {timeout}"
                        f" s: {self.queued(prefix)}")


@pytest.fixture
def pools(slurm_clean, xylem, tmp_path, secret_file):
    return Pools(slurm_clean, xylem, tmp_path, secret_file)


def submitted(output, pool=r"\S+"):
    """The names of the jobs a manager's log says it submitted."""
    return re.findall(rf"pool {pool}: submitted job \d+ \((\S+)\)", output)


def prefix_of(name):
    """xy-<manager id>- from a job's name: every job of that manager."""
    return re.match(r"(xy-[0-9a-f]{8}-)", name).group(1)


def watchdogs(prefix):
    """Pids of the watchdog of the manager whose jobs are named prefix*
    (`sh -c SCRIPT xylem-watchdog PREFIX`)."""
    return cluster.processes_with("cmdline", prefix)


def test_burst_scales_out_and_leaves_nothing(pools, tmp_path):
    """24 one-core tasks on 8-core workers: exactly three jobs, each
    with the pool's shape; every task succeeds; after the run no job of
    the manager is queued, none failed, and its watchdog is gone."""
    out = tmp_path / "out"
    wf = write_workflow(tmp_path / "wf.json", [
        task(f"t{i}", f"sleep 2; echo $SLURM_JOB_ID > o",
             outputs=[(out / str(i), "o")]) for i in range(24)])
    r = pools.run(wf, pools.spec("cpu", 8, memory=1000, max=6, backlog=6,
                                 idle=2))
    assert r.returncode == 0, r.output
    names = submitted(r.output)
    assert len(names) == 3, r.output
    calls = pools.spy.calls("sbatch")
    assert len(calls) == 3, calls
    for c in calls:
        assert "--cpus-per-task=8 --mem=1000 --partition cpu" in c, c
    ran = {(out / str(i)).read_text().strip() for i in range(24)}
    assert 1 <= len(ran) <= 3, ran
    prefix = prefix_of(names[0])
    pools.wait_no_jobs(prefix)
    states = {j["Name"]: j["JobState"] for j in pools.ended(prefix)}
    assert sorted(states) == sorted(names), states
    # A job still pending when the demand fell is cancelled; the others
    # complete when the manager tells their workers to stop.
    assert set(states.values()) <= {"COMPLETED", "CANCELLED"}, states
    assert not watchdogs(prefix)


def test_submissions_under_way_are_capped(pools, tmp_path):
    """Twelve one-core tasks on one-core workers: twelve jobs, but never
    more than eight sbatch at once (each made to take 0.3 s)."""
    pools.spy.slow_sbatch(0.3)
    wf = write_workflow(tmp_path / "wf.json", [
        task(f"t{i}", "sleep 1") for i in range(12)])
    r = pools.run(wf, pools.spec("cpu", 1, memory=100, max=12,
                                 backlog=12))
    assert r.returncode == 0, r.output
    assert len(pools.spy.calls("sbatch")) == 12, r.output
    assert 2 <= pools.spy.most_at_once() <= 8, \
        pools.spy.running.read_text()
    pools.wait_no_jobs(prefix_of(submitted(r.output)[0]))


def test_gpu_tasks_cause_only_gpu_jobs(pools, tmp_path):
    out = tmp_path / "out"
    report = 'echo "$SLURM_JOB_PARTITION $CUDA_VISIBLE_DEVICES" > o'
    wf = write_workflow(tmp_path / "wf.json", [
        task(f"g{i}", f"{report}; sleep 1", outputs=[(out / f"g{i}", "o")],
             resources={"cores": 1, "gpus": 1}) for i in range(3)])
    r = pools.run(wf, pools.spec("cpu", 8, memory=1000, max=4),
                  pools.spec("gpu", 8, gpus=2, memory=1000, max=4))
    assert r.returncode == 0, r.output
    # Three one-GPU tasks on two-GPU workers: two GPU jobs, no CPU job.
    assert submitted(r.output, "cpu") == [], r.output
    assert len(submitted(r.output, "gpu")) == 2, r.output
    for c in pools.spy.calls("sbatch"):
        assert "--gres=gpu:2 --partition gpu" in c, c
    for i in range(3):
        part, gpus = (out / f"g{i}").read_text().split()
        assert part == "gpu" and gpus in ("0", "1"), (part, gpus)
    prefix = prefix_of(submitted(r.output)[0])
    pools.wait_no_jobs(prefix)
    assert {j["Partition"] for j in pools.ended(prefix)} == {"gpu"}


def test_unfit_task_fails_at_once(pools, tmp_path):
    wf = write_workflow(tmp_path / "wf.json", [
        task("big", "true", resources={"cores": 16}),
        task("gpus", "true", resources={"gpus": 4})])
    r = pools.run(wf, pools.spec("cpu", 8, memory=1000),
                  pools.spec("gpu", 8, gpus=2, memory=1000), timeout=20)
    assert r.returncode == 1, r.output
    for t in ("big", "gpus"):
        assert f'failed: task "{t}": unschedulable' in r.output, r.output
    assert "the pools offer cpu: 8 cores, 0 GPUs, 1000 MB; gpu: 8 cores," \
        " 2 GPUs, 1000 MB" in r.output, r.output
    assert pools.spy.calls("sbatch") == []


def test_scancel_of_running_workers_loses_nothing(pools, tmp_path):
    """Two of the running workers' jobs cancelled under their tasks:
    every task still succeeds with retries=0 (the loss is the
    worker's), and the pool asks for workers again."""
    out, started, flag = tmp_path / "out", tmp_path / "started", \
        tmp_path / "go"
    started.mkdir()
    wf = write_workflow(tmp_path / "wf.json", [
        task(f"t{i}", f"echo $SLURM_JOB_ID > {started}/$$; while [ ! -e"
             f" {flag} ]; do sleep 0.1; done; echo ok > o",
             outputs=[(out / str(i), "o")], retries=0) for i in range(16)])
    mgr = pools.start("run", wf, "--secret-file", pools.secret_file,
                      "--pool",
                      pools.spec("cpu", 4, memory=500, max=4, backlog=4))

    def running_jobs():
        jobs = {f.read_text().strip() for f in started.iterdir()}
        return jobs if len(jobs) >= 2 else None
    jobs = cluster.wait_until(running_jobs, 30 * SLOW, 0.1)
    assert jobs, mgr.output
    victims = random.sample(sorted(jobs), 2)
    pools.slurm.run("scancel", *victims)
    # The tasks go on only once the pool has asked for a replacement:
    # released at once, they would fit on the two workers left and the
    # run could end before the scaler looks again.
    assert cluster.wait_until(lambda: len(submitted(mgr.output)) > 4,
                              30 * SLOW, 0.1), mgr.output
    flag.touch()
    assert mgr.wait(60) == 0, mgr.output
    assert "16 tasks: 16 succeeded, 0 failed" in mgr.output, mgr.output
    for i in range(16):
        assert (out / str(i)).read_text() == "ok\n"
    names = submitted(mgr.output)
    assert len(names) > 4, mgr.output
    prefix = prefix_of(names[0])
    pools.wait_no_jobs(prefix)
    ended = {j["JobId"]: j["JobState"] for j in pools.ended(prefix)}
    assert all(ended[v] == "CANCELLED" for v in victims), ended


def test_drain_finishes_the_task_and_completes_the_job(pools, tmp_path):
    """A pool with a walltime submits --time and the drain signal; the
    drain itself, as the signal would bring it (SIGUSR1 to the batch
    shell, here by scancel --batch), lets the running task finish and
    the job complete."""
    flag, out = tmp_path / "go", tmp_path / "out"
    wf = write_workflow(tmp_path / "wf.json", [
        task("slow", f"echo $SLURM_JOB_ID > {tmp_path}/job; while [ ! -e"
             f" {flag} ]; do sleep 0.1; done; echo done > o",
             outputs=[(out, "o")], retries=0)])
    mgr = pools.start("run", wf, "--quiet", "--secret-file",
                      pools.secret_file, "--pool",
                      pools.spec("cpu", 1, memory=500, walltime=180))
    job = cluster.wait_until(lambda: (tmp_path / "job").exists() and
                             (tmp_path / "job").read_text().strip(),
                             30 * SLOW, 0.1)
    assert job, mgr.output
    (call,) = pools.spy.calls("sbatch")
    assert "--time=3 --signal=B:USR1@60" in call, call
    assert pools.slurm.job(job)["TimeLimit"] == "00:03:00"
    pools.slurm.run("scancel", "--batch", "--signal=USR1", job)
    mgr.wait_line(r"worker \S+ is draining: 1 tasks to finish", 10)
    flag.touch()
    assert mgr.wait(30) == 0, mgr.output
    assert out.read_text() == "done\n"
    assert pools.slurm.wait_job(job, "COMPLETED", 10 * SLOW) == "COMPLETED"
    assert len(submitted(mgr.output)) == 1, mgr.output


def test_worker_drains_itself_before_its_walltime(pools, tmp_path):
    """A pool of one-minute jobs: the worker learns its job's end from
    Slurm (squeue: Slurm 22.05 exports no SLURM_JOB_END_TIME), tells the
    manager it has about 60 s, and drains itself 15 s before the end (a
    quarter of a short walltime) on its own: the pool's SIGUSR1 backstop
    is replaced here by SIGURG, which the worker ignores, so that only the
    worker's own clock can drain it. Its running task (no time limit:
    any worker takes it) finishes, the job COMPLETES, and the task queued behind runs
    on a second job. Takes about 50 s: Slurm's shortest walltime is a
    minute."""
    flag, out = tmp_path / "go", tmp_path / "out"
    out.mkdir()
    wf = write_workflow(tmp_path / "wf.json", [
        task("held", f"echo $SLURM_JOB_ID > {tmp_path}/job; while [ ! -e"
             f" {flag} ]; do sleep 0.1; done; echo done > o",
             outputs=[(out / "held", "o")], retries=0),
        task("tail", "echo $SLURM_JOB_ID > o", outputs=[(out / "tail", "o")],
             priority=-1)])
    mgr = pools.start("run", wf, "--quiet", "--secret-file",
                      pools.secret_file, "--pool",
                      pools.spec("cpu", 1, memory=500, walltime=60, max=1,
                                 **{"sbatch-arg": "--signal=B:URG@1"}))
    job = cluster.wait_until(lambda: (tmp_path / "job").exists() and
                             (tmp_path / "job").read_text().strip(),
                             30 * SLOW, 0.1)
    assert job, mgr.output
    (call,) = pools.spy.calls("sbatch")
    assert "--time=1 --signal=B:USR1@60" in call, call
    (name,) = submitted(mgr.output)
    # The end reached the worker, and the manager knows its time left.
    log = pools.job_log(name)
    assert re.search(r"walltime: ends in (5\d|60) s \(from squeue\); "
                     r"drains 1[45] s before", log), log
    m = re.search(rf"worker {name}: (\d+) s left for tasks", mgr.output)
    assert m and 50 <= int(m.group(1)) <= 60, mgr.output
    # On time: 45 s in, give or take the worker's start.
    assert cluster.wait_until(lambda: "draining" in pools.job_log(name),
                              70, 0.2), pools.job_log(name)
    log = pools.job_log(name)
    assert re.search(r"draining: no new tasks; 1 to finish \(its walltime "
                     r"ends in 1[45] s\)", log), log
    mgr.wait_line(r"worker \S+ is draining: 1 tasks to finish", 10)
    flag.touch()
    assert mgr.wait(60) == 0, mgr.output
    assert (out / "held").read_text() == "done\n"
    assert pools.slurm.wait_job(job, "COMPLETED", 10 * SLOW) == "COMPLETED"
    # The task behind ran on another job, not on the drained worker.
    tail = (out / "tail").read_text().strip()
    assert tail and tail != job, (tail, job)
    assert len(submitted(mgr.output)) == 2, mgr.output


def test_killed_manager_leaves_no_job(pools, tmp_path):
    """kill -9 of a manager with a running worker and jobs that cannot
    start yet (--begin in ten minutes): its watchdog cancels them all."""
    wf = write_workflow(tmp_path / "wf.json", [
        task(f"t{i}", "sleep 60", resources={"cores": 8}) for i in range(4)])
    mgr = pools.start("run", wf, "--quiet", "--secret-file",
                      pools.secret_file,
                      "--pool", pools.spec("cpu", 8, memory=500, max=1),
                      "--pool", pools.spec("later", 8, memory=500, max=3,
                                           partition="cpu", priority=-1,
                                           **{"sbatch-arg":
                                              "--begin=now+600"}))
    m = mgr.wait_line(r"pool cpu: job \d+'s worker (xy-[0-9a-f]{8}-)\S+"
                      r" connected", 30)
    prefix = m.group(1)
    assert cluster.wait_until(lambda: len(pools.queued(prefix)) == 4,
                              10 * SLOW, 0.2), pools.queued(prefix)
    assert len(watchdogs(prefix)) == 1
    mgr.signal(signal.SIGKILL)
    pools.wait_no_jobs(prefix, 10)
    assert cluster.wait_until(lambda: not watchdogs(prefix), 5)


def standing_manager(pools, *specs):
    args = ["manager", "--host", "127.0.0.1", "--secret-file",
            pools.secret_file]
    for s in specs:
        args += ["--pool", s]
    mgr = pools.start(*args)
    port = int(mgr.wait_line(r"listening on port (\d+)", 30).group(1))
    return mgr, port


def stop(mgr):
    """Stops a standing manager as ^C would; it must exit 0."""
    mgr.signal(signal.SIGTERM)
    assert mgr.wait(20) == 0, mgr.output


def status(pools, port):
    r = pools.xylem.run("status", f"127.0.0.1:{port}", "--secret-file",
                        pools.secret_file, "--json", timeout=20)
    assert r.returncode == 0, r.output
    return json.loads(r.output)


def test_standing_manager_shows_jobs_and_releases_idle_workers(
        pools, xylem_bin, tmp_path):
    """`xylem manager --pool`: a client's task brings a job; status shows
    it connected with Slurm's id; once the task is done and the worker
    idle for the pool's idle timeout, it is released and its job
    completes while the manager stands."""
    flag = tmp_path / "go"
    tool = tmp_path / "wait.cwl"
    tool.write_text(textwrap.dedent(f"""
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [sh, -c]
        arguments: ["while [ ! -e {flag} ]; do sleep 0.1; done; echo ok"]
        inputs: []
        stdout: out.txt
        outputs:
          out: {{type: stdout}}
        """).lstrip())
    mgr, port = standing_manager(
        pools, pools.spec("cpu", 2, memory=500, max=2, idle=1))
    client = pools.start("cwl", "--manager", f"127.0.0.1:{port}",
                         "--secret-file", pools.secret_file, "--outdir",
                         tmp_path / "out", "--quiet", tool)
    m = mgr.wait_line(r"pool cpu: job (\d+)'s worker (\S+) connected", 30)
    job, name = m.group(1), m.group(2)
    (p,) = status(pools, port)["pools"]
    assert p["provider"] == "slurm" and p["connected"] == 1, p
    assert [(j["id"], j["name"], j["state"]) for j in p["jobs"]] == \
        [(job, name, "connected")], p
    assert p["jobs"][0]["batch_state"] == "RUNNING", p
    assert pools.slurm.job_state(job) == "RUNNING"
    r = pools.xylem.run("status", f"127.0.0.1:{port}", "--secret-file",
                        pools.secret_file, timeout=20)
    assert re.search(rf"cpu \(slurm\): 2 cores, 0 GPUs, 500 MB a worker; 1"
                     rf" connected, 0 pending.*\n.*\n.*\n +{job} +{name} +"
                     r"connected +RUNNING", r.output), r.output
    flag.touch()
    assert client.wait(30) == 0, client.output
    mgr.wait_line(rf"pool cpu: releasing {name}, idle for", 10)
    assert pools.slurm.wait_job(job, "COMPLETED", 10 * SLOW) == "COMPLETED"
    (p,) = status(pools, port)["pools"]
    assert p["connected"] == 0 and p["pending"] == 0, p
    assert p["jobs"][0]["state"] == "ended", p
    assert mgr.p.poll() is None
    stop(mgr)
    assert not watchdogs(prefix_of(name))


def test_worker_that_cannot_start_says_why(pools, tmp_path):
    """A job whose worker exits at once (no secret: --export=NONE keeps
    the manager's environment from the job): the manager logs, and
    status shows, Slurm's state and exit code and the log's last
    line."""
    mgr, port = standing_manager(
        pools, pools.spec("cpu", 1, memory=500, max=1, min=1,
                          **{"sbatch-arg": "--export=NONE"}))
    m = mgr.wait_line(r"pool cpu: job (\d+) \((\S+)\) ended before its"
                      r" worker connected: (.*)", 20)
    why = m.group(3)
    assert "FAILED" in why and "exit 2" in why, why
    assert "XYLEM_SECRET" in why, (why, pools.job_log(m.group(2)))
    (p,) = status(pools, port)["pools"]
    ended = [j for j in p["jobs"] if j["id"] == m.group(1)]
    assert ended and why in ended[0]["why"], p
    assert ended[0]["batch_state"] == "FAILED", p
    stop(mgr)


def test_refused_submission_shows_sbatchs_message(pools, tmp_path):
    mgr, port = standing_manager(
        pools, pools.spec("cpu", 1, memory=500, max=1, min=1,
                          partition="nosuch"))
    m = mgr.wait_line(r"pool cpu: submission failed: (.*)", 20)
    assert "Invalid partition name specified" in m.group(1), m.group(1)
    (p,) = status(pools, port)["pools"]
    assert "Invalid partition name specified" in p["last_failure"], p
    stop(mgr)
