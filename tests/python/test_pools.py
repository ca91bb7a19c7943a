"""xylem.Executor(pools=...): workers from a pool (the local provider
here; tests/slurm has Slurm's), as many as the queued calls need."""

import os
import time

import pytest

import xylem


def slow_pid(x):
    import os
    import time
    time.sleep(0.5)
    return os.getpid(), x


def test_pool_brings_workers_for_the_calls():
    pool = xylem.Pool("loc", cores=2, max_workers=2, backlog=2,
                      idle_timeout=30)
    with xylem.Executor(pools=[pool]) as ex:
        results = list(ex.map(slow_pid, range(8)))
        assert [x for _, x in results] == list(range(8))
        st = ex.status()
        p = st["pools"][0]
        assert p["name"] == "loc" and p["provider"] == "local"
        # Eight calls on two-core workers: the maximum, two, and no more.
        assert p["submitted"] == 2, p
        assert len({pid for pid, _ in results}) >= 2


def test_unfit_call_fails_at_once():
    pool = xylem.Pool("small", cores=1, memory=1000, max_workers=1)
    with xylem.Executor(pools=[pool]) as ex:
        t0 = time.monotonic()
        f = ex.options(cores=4).submit(os.getpid)
        with pytest.raises(xylem.Unschedulable) as e:
            f.result(timeout=30)
        assert time.monotonic() - t0 < 10
        assert "no pool can run it: it asks for 4 cores" in str(e.value)
        assert "small: 1 cores, 0 GPUs, 1000 MB" in str(e.value)
        # The pool still serves what fits.
        assert ex.submit(sum, [1, 2]).result(timeout=60) == 3


def test_bad_pools():
    with pytest.raises(ValueError, match="provider must be one of"):
        xylem.Pool("p", 1, provider="pbs")
    with pytest.raises(ValueError, match="pool name 'a b'"):
        xylem.Executor(pools=[xylem.Pool("a b", 1)])
    with pytest.raises(ValueError, match="pool 'p' twice"):
        xylem.Executor(pools=[xylem.Pool("p", 1), xylem.Pool("p", 2)])


# ------------------------------------------------ a Parsl provider's pool

def _processes_named(text):
    """The pids of processes whose command line contains text."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_parsl_provider_brings_workers_and_leaves_none():
    from parsl.providers import LocalProvider
    provider = LocalProvider()
    pool = xylem.Pool("prov", cores=2, provider=provider, max_workers=2,
                      backlog=2, idle_timeout=30, manager_host="127.0.0.1")
    with xylem.Executor(pools=[pool]) as ex:
        results = list(ex.map(slow_pid, range(8)))
        assert [x for _, x in results] == list(range(8))
        p = ex.status()["pools"][0]
        assert p["provider"] == "external", p
        # The scaler's decision, carried out by Parsl's provider.
        assert p["submitted"] == 2 and p["connected"] == 2, p
        ids = [j["id"] for j in p["jobs"]]
        names = [j["name"] for j in p["jobs"]]
        assert all(ids), p
        # Parsl's LocalProvider knows them as its own, running.
        states = provider.status(ids)
        assert all(s.state.name == "RUNNING" for s in states), states
    # Shut down: no worker of the pool's is left.
    deadline = time.monotonic() + 15
    while any(_processes_named(n) for n in names) and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_processes_named(n) for n in names)


class _Refusing:
    """A provider whose batch system refuses every job: what a real one
    cannot be made to do on demand."""

    def __init__(self):
        self.calls = 0

    def submit(self, command, tasks_per_node, job_name="x"):
        self.calls += 1
        raise RuntimeError("sbatch: error: invalid partition specified")

    def status(self, job_ids):
        return []

    def cancel(self, job_ids):
        return [True for _ in job_ids]


def test_refused_provider_submissions_are_reported():
    provider = _Refusing()
    pool = xylem.Pool("refused", cores=1, provider=provider, max_workers=1)
    with xylem.Executor(pools=[pool]) as ex:
        f = ex.submit(sum, [1, 2])
        deadline = time.monotonic() + 20
        p = ex.status()["pools"][0]
        while "invalid partition" not in p["last_failure"] and \
                time.monotonic() < deadline:
            time.sleep(0.1)
            p = ex.status()["pools"][0]
        assert "RuntimeError: sbatch: error: invalid partition" in \
            p["last_failure"], p
        assert "paused" in p["why"], p
        ex.shutdown(wait=False, cancel_futures=True)
    assert f.cancelled() or f.done()
    assert provider.calls >= 1


def test_provider_job_that_ends_is_reported():
    from parsl.providers import LocalProvider
    provider = LocalProvider()
    # Its jobs start a program that exits at once: no worker ever comes.
    pool = xylem.Pool("ends", cores=1, provider=provider, max_workers=1,
                      xylem="/bin/false")
    with xylem.Executor(pools=[pool]) as ex:
        ex._provider_jobs._poll_interval = 0.5
        f = ex.submit(sum, [1, 2])
        deadline = time.monotonic() + 20
        p = ex.status()["pools"][0]
        while not p["last_failure"] and time.monotonic() < deadline:
            time.sleep(0.1)
            p = ex.status()["pools"][0]
        assert "the provider says" in p["last_failure"], p
        ended = [j for j in p["jobs"] if j["state"] == "ended"]
        assert ended and "the provider says" in ended[0]["why"], p
        ex.shutdown(wait=False, cancel_futures=True)
    assert f.cancelled() or f.done()


def test_bad_provider_objects():
    with pytest.raises(TypeError, match="has no submit, status, cancel"):
        xylem.Pool("p", 1, provider=object())

    class Blocks(_Refusing):
        nodes_per_block = 2
    with pytest.raises(ValueError, match="nodes_per_block must be 1"):
        xylem.Pool("p", 1, provider=Blocks())


def test_pool_learns_its_workers_time(tmp_path):
    """A pool told no walltime whose workers have an end all the same
    (a partition's time limit; here a wrapper gives them --walltime 40):
    once one has said how much time it has, a call limited to 100 s
    fails as unschedulable, naming that time, instead of the pool asking
    for job after job that cannot take it. A call that fits runs."""
    import shutil
    from xylem.workers import find_xylem
    wrapper = tmp_path / "timed-xylem"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'exec {shutil.which(find_xylem()) or find_xylem()} "$@"'
        " --walltime 40\n")
    wrapper.chmod(0o755)
    pool = xylem.Pool("timed", cores=1, max_workers=2, idle_timeout=30,
                      xylem=str(wrapper))
    with xylem.Executor(pools=[pool]) as ex:
        assert ex.options(time_limit=10).submit(sum, [1, 2]).result(
            timeout=60) == 3
        t0 = time.monotonic()
        f = ex.options(time_limit=100).submit(sum, [3, 4])
        with pytest.raises(xylem.Unschedulable) as e:
            f.result(timeout=60)
        assert time.monotonic() - t0 < 20
        assert "100 s (time limit)" in str(e.value), str(e.value)
        p = ex.status()["pools"][0]
        assert p["submitted"] == 1, p


# ------------------------------------------------ bursts under a pool

def nap(s):
    import time
    time.sleep(s)
    return s


def _pool_idle(ex, timeout=30):
    """Waits until the pool has no worker, connected or pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = ex.status()["pools"][0]
        if not p["connected"] and not p["pending"]:
            return p
        time.sleep(0.1)
    raise AssertionError(f"the pool kept its workers: {p}")


def test_burst_under_a_pool_is_batched_and_asks_for_every_call():
    # A burst of one-core calls of a measured function travels in
    # batches, and the scaler still asks for workers for every call: a
    # batch counts as the calls it carries (docs/python.md, "Batched
    # calls"). 32 calls on 4-core workers: 8 workers, as without bursts.
    pool = xylem.Pool("burst", cores=4, max_workers=8, backlog=8,
                      idle_timeout=1)
    with xylem.Executor(pools=[pool]) as ex:
        b = ex._batching
        # Not measured yet: the calls each go alone (a batch of one,
        # which measures the function), so slow calls are never queued
        # behind each other before the pool's workers come.
        for _ in range(3):
            fs = [ex.submit(nap, 0.002) for _ in range(8)]
            assert [f.result(timeout=120) for f in fs] == [0.002] * 8
            if b.cost:
                break
        assert b.cost, "no batch measured the function"
        assert b.burst_calls == b.bursts, "a call of an unmeasured" \
            " function was batched with others"
        before = _pool_idle(ex)["submitted"]
        bursts, calls = b.bursts, b.burst_calls
        n = 32
        fs = [ex.submit(nap, 0.002) for _ in range(n)]
        assert [f.result(timeout=120) for f in fs] == [0.002] * n
        batched = b.burst_calls - calls
        tasks = (n - batched) + (b.bursts - bursts)
        assert tasks < n / 2, (tasks, batched)
        p = ex.status()["pools"][0]
        assert p["submitted"] - before == n // 4, p
