"""The Executor as concurrent.futures documents it: submit, map, kwargs,
exceptions, shutdown, the context manager, cancel, several executors in
one process, and workers started from elsewhere."""

import concurrent.futures as cf
import subprocess
import threading
import time

import pytest

import pyfuncs
import xylem
from conftest import TIMEOUT


def test_submit_result(ex):
    assert ex.submit(pyfuncs.add, 2, 3).result(TIMEOUT) == 5
    assert ex.submit(pow, 2, 10).result(TIMEOUT) == 1024


def test_lambda_and_closure(ex):
    k = 7
    assert ex.submit(lambda x: x * k, 6).result(TIMEOUT) == 42


def test_kwargs_do_not_collide_with_options(ex):
    # Keyword arguments are the function's, even ones named like options.
    def f(cores, env=None, fresh=None):
        return cores, env, fresh

    assert ex.submit(pyfuncs.add, 1, b=2, scale=10).result(TIMEOUT) == 30
    assert ex.submit(f, cores=5, env="e", fresh="no").result(TIMEOUT) \
        == (5, "e", "no")


def test_map_keeps_order(ex):
    # Later items finish first; map still yields in input order.
    delays = [0.3, 0.2, 0.1, 0.0]
    got = list(ex.map(pyfuncs.sleep_then, delays, range(4), timeout=TIMEOUT))
    assert got == [0, 1, 2, 3]
    assert list(ex.map(pyfuncs.add, range(50), range(50),
                       timeout=TIMEOUT)) == [2 * i for i in range(50)]


def test_exception_type_message_and_remote_traceback(ex):
    f = ex.submit(pyfuncs.fail, "bad input 42")
    with pytest.raises(ValueError, match="bad input 42") as info:
        f.result(TIMEOUT)
    cause = info.value.__cause__
    assert isinstance(cause, xylem.RemoteTraceback)
    # The remote traceback names the user's frames, not the library's.
    assert "nested_fail" in str(cause) and "pyfuncs.py" in str(cause)
    assert "_calls.py" not in str(cause)
    assert isinstance(f.exception(TIMEOUT), ValueError)


def test_exception_that_cannot_be_pickled(ex):
    f = ex.submit(pyfuncs.raise_unpicklable, "with a lock")
    with pytest.raises(xylem.RemoteError) as info:
        f.result(TIMEOUT)
    assert info.value.type_name == "pyfuncs.Unpicklable"
    assert "with a lock" in str(info.value)
    assert "raise_unpicklable" in str(info.value.__cause__)


def test_system_exit_is_the_calls_and_library_survives(ex):
    f = ex.submit(pyfuncs.exit_with, 4)
    with pytest.raises(SystemExit) as info:
        f.result(TIMEOUT)
    assert info.value.code == 4
    assert ex.submit(pyfuncs.add, 1, 1).result(TIMEOUT) == 2


def test_context_manager_waits_and_refuses_afterwards(make_executor):
    with make_executor() as ex:
        fs = [ex.submit(pyfuncs.sleep_then, 0.2, i) for i in range(4)]
    assert all(f.done() for f in fs)
    assert [f.result(0) for f in fs] == [0, 1, 2, 3]
    with pytest.raises(RuntimeError):
        ex.submit(pyfuncs.add, 1)


def test_shutdown_wait(make_executor):
    ex = make_executor(workers=1)
    fs = [ex.submit(pyfuncs.sleep_then, 0.2, i) for i in range(3)]
    ex.shutdown(wait=True)
    assert [f.result(0) for f in fs] == [0, 1, 2]
    ex.shutdown()  # again: nothing happens


def test_shutdown_without_wait_still_completes(make_executor):
    ex = make_executor(workers=1)
    fs = [ex.submit(pyfuncs.sleep_then, 0.3, i) for i in range(2)]
    t = time.monotonic()
    ex.shutdown(wait=False)
    assert time.monotonic() - t < 0.3
    assert [f.result(TIMEOUT) for f in fs] == [0, 1]
    with pytest.raises(RuntimeError):
        ex.submit(pyfuncs.add, 1)


def test_shutdown_cancel_futures(make_executor):
    ex = make_executor(workers=1)
    first = ex.submit(pyfuncs.sleep_then, 5, "first")
    rest = [ex.submit(pyfuncs.sleep_then, 5, i) for i in range(5)]
    t = time.monotonic()
    ex.shutdown(wait=True, cancel_futures=True)
    assert time.monotonic() - t < 4
    assert all(f.cancelled() for f in rest)
    assert first.done()
    with pytest.raises(cf.CancelledError):
        rest[0].result(0)


def test_cancel_a_queued_future(ex, tmp_path):
    busy = [ex.submit(pyfuncs.sleep_then, 1, i) for i in range(2)]
    marker = tmp_path / "ran"
    queued = ex.submit(pyfuncs.upper_file, "/nonexistent", str(marker))
    assert queued.cancel()
    assert queued.cancelled() and queued.done()
    assert [f.result(TIMEOUT) for f in busy] == [0, 1]
    assert ex.submit(pyfuncs.add, 2).result(TIMEOUT) == 2
    assert not marker.exists()


def test_done_callbacks_and_as_completed(ex):
    seen = []
    fs = [ex.submit(pyfuncs.add, i) for i in range(10)]
    for f in fs:
        f.add_done_callback(lambda f: seen.append(f.result()))
    done = {f.result() for f in cf.as_completed(fs, timeout=TIMEOUT)}
    assert done == set(range(10))
    # Callbacks run on a thread of their own, soon after.
    deadline = time.monotonic() + TIMEOUT
    while len(seen) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(seen) == list(range(10))
    # On a Future already done, a callback runs at once, in this thread.
    here = []
    fs[0].add_done_callback(lambda f: here.append(threading.get_ident()))
    assert here == [threading.get_ident()]


def test_a_slow_callback_stalls_nothing(ex):
    # Callbacks do not run on the manager's thread: one that blocks does
    # not hold up the next call's result.
    gate = threading.Event()
    first = ex.submit(pyfuncs.add, 1)
    first.add_done_callback(lambda f: gate.wait(4 * TIMEOUT))
    first.result(TIMEOUT)
    try:
        assert ex.submit(pyfuncs.add, 2).result(TIMEOUT) == 2
    finally:
        gate.set()


def test_submit_from_a_done_callback(ex):
    # Submitting from a callback works (it runs on the callback thread).
    second = []
    first = ex.submit(pyfuncs.add, 1)
    first.add_done_callback(
        lambda f: second.append(ex.submit(pyfuncs.add, f.result(), 1)))
    first.result(TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while not second and time.monotonic() < deadline:
        time.sleep(0.01)
    assert second[0].result(TIMEOUT) == 2


def test_several_executors_in_one_process(make_executor):
    a, b = make_executor(workers=1), make_executor(workers=1)
    assert a.port != b.port
    fa = [a.submit(pyfuncs.count) for _ in range(3)]
    fb = [b.submit(pyfuncs.count) for _ in range(3)]
    pa = {f.result(TIMEOUT)[0] for f in fa}
    pb = {f.result(TIMEOUT)[0] for f in fb}
    assert len(pa) == 1 and len(pb) == 1 and pa != pb
    a.shutdown()
    assert b.submit(pyfuncs.add, 3).result(TIMEOUT) == 3


def test_remote_workers_with_port_and_secret_file(make_executor, tmp_path):
    from xylem.workers import find_xylem
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    ex = make_executor(workers=0, secret_file=str(secret))
    assert ex.secret_file == str(secret)
    f = ex.submit(pyfuncs.add, 20, 22)
    log = open(tmp_path / "worker.log", "w+")
    w = subprocess.Popen([find_xylem(), "worker", f"127.0.0.1:{ex.port}",
                          "--secret-file", str(secret), "--cores", "1",
                          "--tls-ca", ex.tls_ca],
                         stdin=subprocess.DEVNULL, stderr=log)
    try:
        assert f.result(TIMEOUT) == 42
        assert ex.stats()["workers_connected"] == 1
        assert ex.status()["workers"]
    finally:
        ex.shutdown()
        try:
            w.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()
            pytest.fail("the worker did not exit when the manager went")
    # A clean shutdown tells the worker to stop: it exits 0, with no
    # error line, so that a batch job running it does not fail.
    log.seek(0)
    text = log.read()
    log.close()
    assert w.returncode == 0, text
    assert " error " not in text, text
    assert "shut down by the manager" in text, text
