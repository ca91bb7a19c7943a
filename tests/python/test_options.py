"""Per-call options through ex.options(...): resources, environment,
input and output files, time limits, and large arguments and results."""

import os
import re
import subprocess
import time
import warnings

import pytest

import pyfuncs
import xylem
from conftest import TIMEOUT
from xylem.workers import find_xylem


def test_options_view_submit_and_map(ex):
    view = ex.options(cores=1, tag="view")
    assert view.submit(pyfuncs.add, 1, 2).result(TIMEOUT) == 3
    assert list(view.map(pyfuncs.add, [1, 2], [3, 4], timeout=TIMEOUT)) \
        == [4, 6]
    assert view.options(env={"A": "1"}).submit(pyfuncs.getenv, "A") \
        .result(TIMEOUT) == "1"


def test_unknown_and_bad_options(ex):
    with pytest.raises(TypeError, match="unknown option"):
        ex.options(core=2)
    with pytest.raises(ValueError):
        ex.options(cores=-1)


def test_cores(make_executor):
    ex = make_executor(workers=1, cores_per_worker=2)
    assert ex.options(cores=2).submit(pyfuncs.add, 2).result(TIMEOUT) == 2
    assert ex.stats()["cores_total"] == 2


# More than either of the two one-core workers of `ex` has: cores, a
# petabyte of memory or disk, and a GPU more than this machine has.
_TOO_MUCH = {"cores": 2, "memory": 10**9, "disk": 10**9,
             "gpus": len([n for n in os.listdir("/dev")
                          if re.fullmatch(r"nvidia\d+", n)]) + 1}
_UNITS = {"cores": "cores", "memory": "MB of memory", "disk": "MB of disk",
          "gpus": "GPUs"}


@pytest.mark.parametrize("key", sorted(_TOO_MUCH))
def test_more_than_any_local_worker_has_fails_at_once(ex, key):
    # Only its own local workers can serve this executor: a call asking
    # for more than they have would wait forever.
    n = _TOO_MUCH[key]
    f = ex.options(**{key: n}).submit(pyfuncs.add, 1)
    err = f.exception(timeout=TIMEOUT)
    assert isinstance(err, ValueError), err
    assert f"asks for {n} {_UNITS[key]}, but each of this executor's 2" \
           f" local workers has " in str(err), err
    # What fits still runs.
    fits = ex.options(**{key: n - 1 if key in ("cores", "gpus") else 10})
    assert fits.submit(pyfuncs.add, 2).result(TIMEOUT) == 2


def _worker(ex, secret, cores):
    return subprocess.Popen([find_xylem(), "worker", f"127.0.0.1:{ex.port}",
                             "--secret-file", str(secret), "--cores",
                             str(cores), "--gpus", "0",
                             "--tls-ca", ex.tls_ca],
                            stdin=subprocess.DEVNULL)


def _wait_for_warnings(caught, n):
    deadline = time.monotonic() + TIMEOUT
    while len(caught) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return [str(w.message) for w in caught]


def test_more_than_any_connected_worker_has_warns_once(make_executor,
                                                      tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    ex = make_executor(workers=0, secret_file=str(secret))
    workers = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # Submitted before any worker: no warning yet, they may fit.
            big = [ex.options(cores=2).submit(pyfuncs.add, i)
                   for i in range(3)]
            assert caught == []
            workers.append(_worker(ex, secret, 1))
            # Once the worker has connected, a look says so, once.
            got = _wait_for_warnings(caught, 1)
            assert len(got) == 1, got
            assert "asking for 2 cores" in got[0], got
            assert "the largest has 1 cores" in got[0], got
            # With a worker there, a new shape warns at its submit, from
            # the caller's line.
            gpu = ex.options(gpus=1).submit(pyfuncs.add, 0)
            assert len(caught) == 2, [str(w.message) for w in caught]
            assert "1 GPUs" in str(caught[1].message)
            assert caught[1].filename == __file__
            ex.options(cores=2).submit(pyfuncs.add, 9)
            ex.options(gpus=1).submit(pyfuncs.add, 9)
            time.sleep(1.5)
            assert len(caught) == 2, [str(w.message) for w in caught]
        # The calls waited: a worker large enough runs them.
        workers.append(_worker(ex, secret, 2))
        assert [f.result(TIMEOUT) for f in big] == [0, 1, 2]
        assert not gpu.done()
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
        for w in workers:
            try:
                w.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()


@pytest.mark.parametrize("fresh", [False, True])
def test_env(ex, fresh):
    f = ex.options(env={"XY_TEST": "yes"}, fresh=fresh).submit(
        pyfuncs.getenv, "XY_TEST")
    assert f.result(TIMEOUT) == "yes"
    # A warm library restores its environment after the call.
    assert ex.options(fresh=fresh).submit(pyfuncs.getenv, "XY_TEST") \
        .result(TIMEOUT) is None


@pytest.mark.parametrize("fresh", [False, True])
def test_input_and_output_files(ex, tmp_path, fresh):
    src = tmp_path / "in.txt"
    src.write_text("hello xylem\n")
    dst = tmp_path / "out" / "result.txt"
    dst.parent.mkdir()
    f = ex.options(inputs=[xylem.File(src, name="a.txt")],
                   outputs=[xylem.File(dst, name="b.txt")],
                   fresh=fresh).submit(pyfuncs.upper_file, "a.txt", "b.txt")
    assert f.result(TIMEOUT) == 12
    assert dst.read_text() == "HELLO XYLEM\n"


def test_temp_between_calls(ex, tmp_path):
    """A Temp made by one call feeds the next without coming back."""
    mid = xylem.Temp("mid.txt")
    src = tmp_path / "in.txt"
    src.write_text("temp\n")
    dst = tmp_path / "out.txt"
    a = ex.options(inputs=[xylem.File(src, name="a.txt")],
                   outputs=[mid]).submit(pyfuncs.upper_file, "a.txt",
                                         "mid.txt")
    assert a.result(TIMEOUT) == 5
    b = ex.options(inputs=[mid], outputs=[xylem.File(dst, name="b.txt")]) \
        .submit(pyfuncs.upper_file, "mid.txt", "b.txt")
    assert b.result(TIMEOUT) == 5
    assert dst.read_text() == "TEMP\n"
    assert not (tmp_path / "mid.txt").exists()
    with pytest.raises(ValueError):
        xylem.Temp("x", replicas=0)


def test_input_paths_and_sandbox_names(ex, tmp_path):
    (tmp_path / "data.csv").write_text("1,2\n")
    f = ex.options(inputs=[str(tmp_path / "data.csv")]).submit(
        pyfuncs.cwd_files)
    assert "data.csv" in f.result(TIMEOUT)


@pytest.mark.parametrize("fresh", [False, True])
def test_time_limit(ex, fresh):
    f = ex.options(time_limit=1, fresh=fresh).submit(
        pyfuncs.sleep_then, 30, "late")
    with pytest.raises(xylem.ResourcesExhausted) as info:
        f.result(TIMEOUT)
    assert "limit" in str(info.value)
    # The next call runs (warm: in a new library instance).
    assert ex.options(fresh=fresh).submit(pyfuncs.add, 5).result(TIMEOUT) \
        == 5


@pytest.mark.parametrize("fresh", [False, True])
def test_retries_after_a_crash(ex, tmp_path, fresh):
    # The first attempt kills its process; with a retry the call runs
    # again (warm: in a new library instance) and succeeds.
    marker = tmp_path / "m"
    f = ex.options(retries=1, fresh=fresh).submit(pyfuncs.crash_once,
                                                  str(marker), "second")
    assert f.result(TIMEOUT) == "second"


def test_large_argument_goes_as_a_file(ex):
    data = b"y" * (9 << 20)  # over the 8 MiB a call message may carry
    assert ex.submit(pyfuncs.nbytes, data).result(TIMEOUT) == len(data)


def test_large_result(ex):
    f = ex.submit(pyfuncs.make_bytes, 9 << 20)
    with pytest.raises(xylem.PickleError, match="output file"):
        f.result(TIMEOUT)
    # Fresh mode brings results back as files, whatever their size.
    f = ex.options(fresh=True).submit(pyfuncs.make_bytes, 9 << 20)
    assert len(f.result(TIMEOUT)) == 9 << 20
