"""The gridengine pool provider through a real Grid Engine
(docs/scaling.md, "Grid Engine"): the manager's own qsub, qstat and qdel
against the test cell. A burst asks for the jobs it needs, in the pool's
shape, and leaves none behind; a standing manager shows its jobs and
releases idle workers while it stands; a manager killed with SIGKILL
leaves no job queued or running (its watchdog); a refused qsub says why
and pauses the pool after repeated failures; a job whose worker cannot
start says why.

qsub is reached through a spy on PATH that logs each call before it runs
Grid Engine's own."""

import json
import os
import re
import shutil
import signal
import textwrap

import pytest

import cluster
from helpers import SLOW, task, write_workflow


class Pools:
    """Runs xylem with gridengine pools against the cell."""

    def __init__(self, ge, xylem, tmp_path, secret_file):
        self.ge = ge
        self.xylem = xylem
        self.secret_file = secret_file
        self.spy = tmp_path / "spy"
        self.spy.mkdir()
        self.calls = tmp_path / "qsub.log"
        self.calls.touch()
        qsub = self.spy / "qsub"
        qsub.write_text(f'#!/bin/sh\necho "$*" >> {self.calls}\n'
                        f'exec {shutil.which("qsub")} "$@"\n')
        qsub.chmod(0o755)
        self.logs = tmp_path / "jobs"
        self.logs.mkdir()
        self.env = dict(xylem.env, XYLEM_LOG="info",
                        PATH=f"{self.spy}:{os.environ['PATH']}")
        self.env.update({k: v for k, v in ge.env.items()
                         if k.startswith("SGE_")})

    def spec(self, name, cores, **keys):
        keys = {"name": name, "provider": "gridengine", "cores": cores,
                "manager-host": "127.0.0.1", "log-dir": self.logs, **keys}
        return ",".join(f"{k}={v}" for k, v in keys.items())

    def qsubs(self):
        return self.calls.read_text().splitlines()

    def start(self, *args):
        return self.xylem.start(*map(str, args), env=self.env)

    def queued(self, prefix):
        return [(i, n, s) for i, (n, s) in self.ge.jobs().items()
                if n.startswith(prefix)]

    def wait_no_jobs(self, prefix, timeout=10):
        if not cluster.wait_until(lambda: not self.queued(prefix),
                                  timeout * SLOW, 0.2):
            pytest.fail(f"jobs of {prefix} still queued after {timeout}"
                        f" s: {self.queued(prefix)}")


@pytest.fixture
def pools(gridengine_clean, xylem, tmp_path, secret_file):
    return Pools(gridengine_clean, xylem, tmp_path, secret_file)


def submitted(output, pool=r"\S+"):
    return re.findall(rf"pool {pool}: submitted job (\d+) \((\S+)\)",
                      output)


def prefix_of(name):
    return re.match(r"(xy-[0-9a-f]{8}-)", name).group(1)


def watchdogs(prefix):
    """Pids of the watchdog of the manager whose jobs are named prefix*."""
    needle = prefix.encode() + b"\0"
    pids = []
    for d in os.listdir("/proc"):
        try:
            cmd = open(f"/proc/{d}/cmdline", "rb").read()
        except OSError:
            continue
        if b"xylem-watchdog\0" + needle in cmd and cluster.pid_alive(int(d)):
            pids.append(int(d))
    return pids


def standing_manager(pools, *specs):
    args = ["manager", "--host", "127.0.0.1", "--secret-file",
            pools.secret_file]
    for s in specs:
        args += ["--pool", s]
    mgr = pools.start(*args)
    port = int(mgr.wait_line(r"listening on port (\d+)", 30).group(1))
    return mgr, port


def stop(mgr):
    mgr.signal(signal.SIGTERM)
    assert mgr.wait(20) == 0, mgr.output


def status(pools, port):
    r = pools.xylem.run("status", f"127.0.0.1:{port}", "--secret-file",
                        pools.secret_file, "--json", timeout=20)
    assert r.returncode == 0, r.output
    return json.loads(r.output)


def test_burst_scales_out_and_leaves_nothing(pools, tmp_path):
    """16 one-core tasks on 4-core workers: exactly four jobs, each
    asking for the pool's shape (4 slots of the smp parallel
    environment, memory, walltime); every task runs inside one of them;
    afterwards no job of the manager is queued and its watchdog is
    gone."""
    out = tmp_path / "out"
    wf = write_workflow(tmp_path / "wf.json", [
        task(f"t{i}", "sleep 2; echo $JOB_ID > o",
             outputs=[(out / str(i), "o")]) for i in range(16)])
    r = pools.xylem.run(
        "run", wf, "--quiet", "--secret-file", pools.secret_file,
        "--pool", pools.spec("cpu", 4, memory=400, max=4, backlog=4,
                             idle=2, walltime=600),
        timeout=60 * SLOW, env=pools.env)
    assert r.returncode == 0, r.output
    jobs = submitted(r.output)
    assert len(jobs) == 4, r.output
    calls = pools.qsubs()
    assert len(calls) == 4, calls
    for c in calls:
        assert "-pe smp 4 -l mem_free=100M -l h_rt=600,s_rt=540" in c, c
        # The worker's shape, and its end (Grid Engine tells it none).
        assert re.search(r" worker 127\.0\.0\.1:\d+ --name xy-\S+ .*"
                         r"--cores 4 --memory 400 --gpus 0"
                         r" --walltime 600$", c), c
    ran = {(out / str(i)).read_text().strip() for i in range(16)}
    assert ran <= {i for i, _ in jobs}, (ran, jobs)
    prefix = prefix_of(jobs[0][1])
    pools.wait_no_jobs(prefix)
    assert not watchdogs(prefix)


def test_standing_manager_shows_jobs_and_releases_idle_workers(
        pools, tmp_path):
    """A client's task brings one job; status shows it connected, Grid
    Engine's id and state `r`; once the worker has been idle for the
    pool's idle timeout it is released and its job leaves the queue
    while the manager stands (scale-in)."""
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
    assert p["provider"] == "gridengine" and p["connected"] == 1, p
    assert [(j["id"], j["name"], j["state"], j["batch_state"])
            for j in p["jobs"]] == [(job, name, "connected", "r")], p
    # "t" (transferring) lasts until the execd's next report, though
    # the job runs.
    assert pools.ge.jobs().get(job) in {(name, "r"), (name, "t")}
    flag.touch()
    assert client.wait(30) == 0, client.output
    mgr.wait_line(rf"pool cpu: releasing {name}, idle for", 10)
    assert cluster.wait_until(lambda: job not in pools.ge.jobs(),
                              10 * SLOW, 0.2), pools.ge.jobs()
    acct = pools.ge.run("qacct", "-j", job)
    assert re.search(r"(?m)^exit_status\s+0\s*$", acct), acct
    (p,) = status(pools, port)["pools"]
    assert p["connected"] == 0 and p["pending"] == 0, p
    assert mgr.p.poll() is None
    stop(mgr)
    assert not watchdogs(prefix_of(name))


def test_killed_manager_leaves_no_job(pools, tmp_path):
    """kill -9 of a manager with a running worker and jobs that cannot
    start (held, qsub -h): its watchdog deletes them all within 10 s."""
    wf = write_workflow(tmp_path / "wf.json", [
        task(f"t{i}", "sleep 60", resources={"cores": 4}) for i in range(4)])
    mgr = pools.start("run", wf, "--quiet", "--secret-file",
                      pools.secret_file,
                      "--pool", pools.spec("cpu", 4, memory=500, max=1),
                      "--pool", pools.spec("held", 4, memory=500, max=3,
                                           priority=-1,
                                           **{"qsub-arg": "-h"}))
    m = mgr.wait_line(r"pool cpu: job \d+'s worker (xy-[0-9a-f]{8}-)\S+"
                      r" connected", 30)
    prefix = m.group(1)
    assert cluster.wait_until(lambda: len(pools.queued(prefix)) == 4,
                              10 * SLOW, 0.2), pools.queued(prefix)
    states = sorted(s for _, _, s in pools.queued(prefix))
    assert states[:3] == ["hqw", "hqw", "hqw"], states
    assert states[3] in ("r", "t"), states
    assert len(watchdogs(prefix)) == 1
    mgr.signal(signal.SIGKILL)
    pools.wait_no_jobs(prefix, 10)
    assert cluster.wait_until(lambda: not watchdogs(prefix), 5)


def test_refused_submission_says_why_and_pauses(pools):
    """qsub refuses a queue that does not exist: the log and status give
    qsub's message; after five refusals in a row (1, 2, 4, 8 s apart) the
    pool pauses."""
    mgr, port = standing_manager(
        pools, pools.spec("cpu", 1, memory=500, max=1, min=1,
                          **{"qsub-arg": "-q,qsub-arg=nosuch.q"}))
    m = mgr.wait_line(r"pool cpu: submission failed: (.*)", 20)
    assert 'job requests unknown queue "nosuch.q"' in m.group(1), m.group(1)
    (p,) = status(pools, port)["pools"]
    assert "unknown queue" in p["last_failure"], p
    mgr.wait_line(r"pool cpu: paused for 60 s after failure 5 in a row",
                  30 * SLOW)
    (p,) = status(pools, port)["pools"]
    assert p["why"].startswith("paused for 60 s after failure 5"), p
    assert len(pools.qsubs()) == 5, pools.qsubs()
    stop(mgr)


def test_job_in_error_state_is_deleted_and_says_why(pools):
    """A job Grid Engine cannot start (its working directory does not
    exist: state Eqw, where it would wait forever): the manager deletes
    it, and logs and shows qstat's error reason."""
    mgr, port = standing_manager(
        pools, pools.spec("cpu", 1, memory=500, max=1, min=1,
                          **{"qsub-arg": "-wd,qsub-arg=/nonexistent"}))
    m = mgr.wait_line(r"pool cpu: job (\d+) \((\S+)\) ended before its"
                      r" worker connected: (.*)", 30)
    job, why = m.group(1), m.group(3)
    assert why.startswith("in error state Eqw, deleted: error reason"), why
    assert "can't chdir to /nonexistent" in why, why
    assert cluster.wait_until(lambda: job not in pools.ge.jobs(), 10, 0.2)
    (p,) = status(pools, port)["pools"]
    ended = [j for j in p["jobs"] if j["id"] == job]
    assert ended and why in ended[0]["why"], p
    stop(mgr)


def test_job_deleted_before_its_worker_came_says_so(pools):
    """A pending job deleted by someone else (qdel by hand): the manager
    notices at its next qstat and logs that it left the queue."""
    mgr, port = standing_manager(
        pools, pools.spec("cpu", 1, memory=500, max=1, min=1,
                          **{"qsub-arg": "-h"}))
    job = mgr.wait_line(r"pool cpu: submitted job (\d+)", 20).group(1)
    pools.ge.run("qdel", job)
    m = mgr.wait_line(rf"pool cpu: job {job} \(\S+\) ended before its"
                      r" worker connected: (.*)", 20)
    assert m.group(1).startswith("left the queue"), m.group(1)
    stop(mgr)
