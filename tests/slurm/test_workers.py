"""Workers started by Slurm jobs (docs/scaling.md): a manager on this
host, `xylem worker` in `sbatch` jobs of the test cluster. Each worker
offers its allocation, not the host (every node here is the same 2-core
machine); a GPU task lands on a worker with GPUs and sees the ids Slurm
gave that worker; scancel and a lost manager each end the worker's job
and leave no process behind."""

import json
import signal

import pytest

import cluster
from helpers import SLOW, task, write_workflow


def held(command, flag):
    """A command that first waits (up to 60 s) for flag to exist, so that
    tasks stay on their workers while the test looks."""
    return (f"n=0; while [ ! -e {flag} ] && [ $n -lt 600 ]; do sleep 0.1;"
            f" n=$((n+1)); done; {command}")


def status(xylem, port, secret_file):
    r = xylem.run("status", f"127.0.0.1:{port}", "--secret-file",
                  secret_file, "--json", timeout=20)
    assert r.returncode == 0, r.output
    return json.loads(r.output)


class Workers:
    """Worker jobs for one manager; their logs in tmp_path."""

    def __init__(self, slurm, xylem_bin, tmp_path, port, secret_file):
        self.slurm = slurm
        self.cmd = (f"exec {xylem_bin} worker 127.0.0.1:{port}"
                    f" --secret-file {secret_file} --name job-$SLURM_JOB_ID"
                    " --connect-timeout 30")
        self.tmp = tmp_path
        self.jobs = []

    def submit(self, *args):
        job = self.slurm.sbatch("-t", "2", "-J", "xylem-worker", "-o",
                                self.tmp / "job-%j.log", *args,
                                "--wrap", self.cmd)
        self.jobs.append(job)
        return job

    def logs(self):
        return "\n".join(f"--- job {j}\n" + self.log(j) for j in self.jobs)

    def log(self, job):
        try:
            return (self.tmp / f"job-{job}.log").read_text()
        except OSError:
            return "(no log)"

    def wait_connected(self, xylem, port, secret_file, n, timeout=30):
        """Waits until n workers are connected; returns them by name."""
        def connected():
            ws = status(xylem, port, secret_file)["workers"]
            return ws if len(ws) >= n else None
        ws = cluster.wait_until(connected, timeout * SLOW, 0.2)
        if not ws:
            pytest.fail(f"{n} workers not connected after {timeout} s:\n"
                        + self.slurm.run("squeue", check=False)
                        + self.logs() + "\n" + self.slurm.logs())
        return {w["name"]: w for w in ws}

    def wait_ended(self, job, states, timeout=20):
        try:
            return self.slurm.wait_job(job, states, timeout * SLOW)
        except cluster.SlurmError as e:
            pytest.fail(f"{e}\n{self.log(job)}")


def busy_worker(slurm, xylem, xylem_bin, secret_file, tmp_path, command,
                outputs=()):
    """A manager with one task, `command`, and a one-core worker job
    running it. Returns (manager, port, workers, job)."""
    wf = write_workflow(tmp_path / "wf.json",
                        [task("one", command, outputs=outputs)])
    mgr, port = xylem.manager(wf, secret_file)
    w = Workers(slurm, xylem_bin, tmp_path, port, secret_file)
    job = w.submit("-p", "cpu", "-c", "1", "--mem", "500")
    w.wait_connected(xylem, port, secret_file, 1)
    if not cluster.wait_until(lambda: status(
            xylem, port, secret_file)["tasks"].get("running"), 20 * SLOW,
            0.2):
        pytest.fail(f"the task did not start:\n{w.logs()}")
    return mgr, port, w, job


def leftovers(job):
    """Processes that still carry the job's id: its worker and tasks."""
    return cluster.processes_with_env("SLURM_JOB_ID", job)


def test_workers_offer_their_allocation(slurm_clean, xylem, xylem_bin,
                                        secret_file, tmp_path):
    flag, out = tmp_path / "go", tmp_path / "out"
    report = 'echo "$SLURM_JOB_ID $CORES $CUDA_VISIBLE_DEVICES" > r'
    tasks = [task(f"cpu{i}", held(report, flag),
                  outputs=[(out / f"cpu{i}", "r")],
                  resources={"cores": 2}) for i in range(2)]
    tasks.append(task("gpu", held(report, flag), outputs=[(out / "gpu", "r")],
                      resources={"cores": 1, "gpus": 2}))
    wf = write_workflow(tmp_path / "wf.json", tasks)
    mgr, port = xylem.manager(wf, secret_file)
    w = Workers(slurm_clean, xylem_bin, tmp_path, port, secret_file)
    cpu = w.submit("-p", "cpu", "-c", "4", "--mem", "2000")
    gpu = w.submit("-p", "gpu", "--gres", "gpu:2", "-c", "2",
                   "--mem", "1000")
    ws = w.wait_connected(xylem, port, secret_file, 2)
    # The allocation, not the host's 2 cores, ~24 GB and no GPUs.
    c, g = ws[f"job-{cpu}"], ws[f"job-{gpu}"]
    assert (c["cores"], c["memory"], c["gpus"]) == (4, 2000, 0), c
    assert (g["cores"], g["memory"], g["gpus"]) == (2, 1000, 2), g
    assert "in Slurm job %s: offering 4 cores, 2000 MB, 0 GPUs" % cpu \
        in w.log(cpu)
    assert "in Slurm job %s: offering 2 cores, 1000 MB, 2 GPUs (0,1)" % gpu \
        in w.log(gpu)

    flag.touch()
    assert mgr.wait(60) == 0, mgr.output
    # Both 2-core tasks fit the 4-core worker at once; the GPU task
    # could only go to the GPU worker, and got the ids Slurm gave it.
    assert (out / "gpu").read_text() == f"{gpu} 1 0,1\n"
    for i in range(2):
        job, cores, *_ = (out / f"cpu{i}").read_text().split()
        assert cores == "2" and job in (cpu, gpu)
    # The manager's SHUTDOWN ends each worker with status 0: the job
    # completes, and leaves nothing running.
    for job in (cpu, gpu):
        assert w.wait_ended(job, "COMPLETED") == "COMPLETED"
        assert cluster.wait_until(lambda: not leftovers(job), 10), \
            leftovers(job)


def test_tasks_get_their_workers_gpu_ids(slurm_clean, xylem, xylem_bin,
                                         secret_file, tmp_path):
    """Two one-GPU jobs on one node: Slurm gives them GPUs 0 and 1, and
    each worker's task sees its own, not the index 0 of both."""
    flag, out = tmp_path / "go", tmp_path / "out"
    report = 'echo "$SLURM_JOB_ID $CUDA_VISIBLE_DEVICES" > r'
    tasks = [task(f"gpu{i}", held(report, flag),
                  outputs=[(out / f"gpu{i}", "r")], resources={"gpus": 1})
             for i in range(2)]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    mgr, port = xylem.manager(wf, secret_file)
    w = Workers(slurm_clean, xylem_bin, tmp_path, port, secret_file)
    jobs = [w.submit("-p", "gpu", "-w", "g2", "--gres", "gpu:1",
                     "--mem", "500") for _ in range(2)]
    ws = w.wait_connected(xylem, port, secret_file, 2)
    assert [ws[f"job-{j}"]["gpus"] for j in jobs] == [1, 1]
    flag.touch()
    assert mgr.wait(60) == 0, mgr.output
    seen = dict((out / f"gpu{i}").read_text().split() for i in range(2))
    assert sorted(seen) == sorted(jobs)
    assert sorted(seen.values()) == ["0", "1"]
    # Each saw the GPU its worker was given.
    for job in jobs:
        assert f"1 GPUs ({seen[job]})" in w.log(job), w.log(job)


def test_scancel_ends_the_worker(slurm_clean, xylem, xylem_bin, secret_file,
                                 tmp_path):
    mgr, port, w, job = busy_worker(slurm_clean, xylem, xylem_bin,
                                    secret_file, tmp_path,
                                    held("true", tmp_path / "never"))
    assert leftovers(job)
    slurm_clean.run("scancel", job)
    assert w.wait_ended(job, "CANCELLED") == "CANCELLED"
    # The worker stopped on SIGTERM as it does anywhere: its task's
    # process group killed, its cache removed, the manager told.
    assert cluster.wait_until(lambda: not leftovers(job), 10), leftovers(job)
    assert "stopping" in w.log(job), w.log(job)
    # Slurm sent SIGTERM to the task as well, perhaps before the worker
    # saw its own: either way the task is lost with its worker, back in
    # the queue, not failed.
    doc = cluster.wait_until(
        lambda: (lambda d: not d["workers"] and d)(
            status(xylem, port, secret_file)), 10 * SLOW, 0.2)
    assert doc, mgr.output
    assert doc["tasks"].get("failed", 0) == 0, doc
    assert doc["tasks"].get("ready") == 1, doc


def test_worker_job_ends_with_its_manager(slurm_clean, xylem, xylem_bin,
                                          secret_file, tmp_path):
    mgr, port, w, job = busy_worker(slurm_clean, xylem, xylem_bin,
                                    secret_file, tmp_path,
                                    held("true", tmp_path / "never"))
    mgr.signal(signal.SIGKILL)
    # A lost manager ends the worker with status 1: the job fails, and
    # is gone from the cluster.
    assert w.wait_ended(job, "FAILED") == "FAILED"
    assert "lost the manager" in w.log(job), w.log(job)
    assert cluster.wait_until(lambda: not leftovers(job), 10), leftovers(job)


def test_drain_by_the_batch_shells_signal(slurm_clean, xylem, xylem_bin,
                                          secret_file, tmp_path):
    """SIGUSR1 to the batch shell alone (`scancel --batch`, as `sbatch
    --signal=B:USR1@S` sends it before a walltime) drains the worker,
    which is the batch shell (exec): its task, not signalled, finishes
    there, and the job completes."""
    flag, out = tmp_path / "go", tmp_path / "out"
    mgr, port, w, job = busy_worker(
        slurm_clean, xylem, xylem_bin, secret_file, tmp_path,
        held("echo $SLURM_JOB_ID > r", flag), [(out / "slow", "r")])
    slurm_clean.run("scancel", "--batch", "--signal=USR1", job)
    assert cluster.wait_until(lambda: "draining" in w.log(job), 10), \
        w.log(job)
    flag.touch()
    assert mgr.wait(60) == 0, mgr.output
    assert (out / "slow").read_text() == f"{job}\n"
    assert w.wait_ended(job, "COMPLETED") == "COMPLETED"
    assert cluster.wait_until(lambda: not leftovers(job), 10), leftovers(job)


def test_run_inside_a_job_sizes_its_workers_by_the_job(slurm_clean,
                                                       xylem_bin, tmp_path):
    """`xylem run` inside a batch job (-c 3 --mem 1200) gives its local
    workers the job's share, not the host's: a 4-core task is refused
    naming 3 cores, and a task the job fits runs."""
    big = write_workflow(tmp_path / "big.json", [
        task("big", "true", resources={"cores": 4})])
    ok = write_workflow(tmp_path / "ok.json", [
        task("ok", f"echo ok > {tmp_path}/ok.out", resources={"cores": 3})])
    log = tmp_path / "job.log"
    job = slurm_clean.sbatch(
        "-p", "cpu", "-c", "3", "--mem", "1200", "-o", str(log),
        "--wrap", f"{xylem_bin} run {big} --workers 1;"
                  f" {xylem_bin} run {ok} --workers 1")
    slurm_clean.wait_job(job, "COMPLETED", 60 * SLOW)
    text = log.read_text()
    assert 'task "big" asks for 4 cores, but each of the 1 local workers' \
        ' has 3' in text, text
    assert (tmp_path / "ok.out").read_text() == "ok\n", text
