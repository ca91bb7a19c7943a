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
