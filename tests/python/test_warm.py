"""Warm libraries and fresh processes: where calls run, what they share,
and what happens when a library crashes, a worker is killed, or the
worker's interpreter is not the manager's."""

import os
import signal
import time

import pytest

import pyfuncs
import xylem
from conftest import TIMEOUT


def test_warm_calls_share_a_process_and_its_modules(make_executor):
    ex = make_executor(workers=1)
    results = [ex.submit(pyfuncs.count).result(TIMEOUT) for _ in range(4)]
    pids = {r[0] for r in results}
    loads = {r[1] for r in results}
    assert len(pids) == 1 and pids != {os.getpid()}
    assert len(loads) == 1  # pyfuncs was imported once
    assert [r[2] for r in results] == [1, 2, 3, 4]


def test_warm_calls_never_see_files_left_by_earlier_ones(make_executor):
    # Calls without files run in pooled directories used in place
    # (docs/worker.md): one left with anything in it is not reused.
    ex = make_executor(workers=1)
    for i in range(6):
        assert ex.submit(pyfuncs.litter, str(i)).result(TIMEOUT) == []
    assert ex.submit(pyfuncs.cwd_files).result(TIMEOUT) == []


def test_fresh_calls_get_new_processes(make_executor):
    ex = make_executor(workers=1)
    view = ex.options(fresh=True)
    results = [view.submit(pyfuncs.count).result(TIMEOUT) for _ in range(3)]
    assert len({r[0] for r in results}) == 3
    assert [r[2] for r in results] == [1, 1, 1]


def test_fresh_executor(make_executor):
    ex = make_executor(workers=1, fresh=True)
    pids = {ex.submit(pyfuncs.getpid).result(TIMEOUT) for _ in range(2)}
    assert len(pids) == 2
    # Per call, warm again.
    warm = {ex.options(fresh=False).submit(pyfuncs.getpid).result(TIMEOUT)
            for _ in range(2)}
    assert len(warm) == 1


def test_library_crash_and_restart(make_executor):
    ex = make_executor(workers=1)
    before = ex.submit(pyfuncs.getpid).result(TIMEOUT)
    f = ex.submit(pyfuncs.crash, 3)
    with pytest.raises(xylem.LibraryCrashed) as info:
        f.result(TIMEOUT)
    err = info.value
    assert "status 3" in str(err) and "during a call" in str(err)
    assert "about to crash" in err.output  # the instance's log tail
    after = ex.submit(pyfuncs.getpid).result(TIMEOUT)
    assert after != before


def test_fresh_crash(ex):
    f = ex.options(fresh=True).submit(pyfuncs.crash, 3)
    with pytest.raises(xylem.TaskFailed, match="status 3"):
        f.result(TIMEOUT)


def _parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_worker_killed_with_a_call_in_flight(make_executor, tmp_path):
    ex = make_executor(workers=2)
    marker = str(tmp_path / "started")
    f = ex.submit(pyfuncs.once_then_value, marker, 60, "ran again")
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(marker):
        assert time.monotonic() < deadline, "the call never started"
        time.sleep(0.02)
    with open(marker) as m:
        pid = int(m.read())
    workers = {p.pid for p in ex._local.procs}
    while pid not in workers:  # up from the library to its worker
        pid = _parent(pid)
        assert pid > 1, "the library is not under a local worker"
    os.kill(pid, signal.SIGKILL)
    assert f.result(TIMEOUT) == "ran again"


@pytest.mark.parametrize("fresh", [False, True])
def test_interpreter_mismatch(make_executor, fresh):
    # The library (or runner) checks the major.minor version it was
    # started for; claim another one to see it refuse.
    ex = make_executor(workers=1, library_env={"XYLEM_PYTHON": "2.7"})
    f = ex.options(fresh=fresh).submit(pyfuncs.add, 1)
    with pytest.raises(xylem.InterpreterMismatch) as info:
        f.result(TIMEOUT)
    text = str(info.value)
    assert "interpreter mismatch" in text and "2.7" in text
    assert "%d.%d" % os.sys.version_info[:2] in text
    # Known by the status reserved for it (xylem/__init__.py).
    assert info.value.exit_code == 78


# The call window (docs/architecture.md): a worker is sent more calls
# than its cores, holds the rest, and hands each to the next idle
# instance.

def test_window_runs_one_call_at_a_time_per_core(make_executor):
    ex = make_executor(workers=1)
    fs = [ex.submit(pyfuncs.interval, 0.05) for _ in range(8)]
    seen = sorted(f.result(TIMEOUT) for f in fs)
    assert len({pid for pid, _, _ in seen}) == 1  # no second instance
    for (_, _, end), (_, start, _) in zip(seen, seen[1:]):
        assert start >= end - 0.005  # never two calls at once


def test_window_calls_survive_a_crash_ahead_of_them(make_executor):
    ex = make_executor(workers=1)
    crash = ex.submit(pyfuncs.crash, 3)
    rest = [ex.submit(pyfuncs.add, i) for i in range(4)]
    with pytest.raises(xylem.LibraryCrashed):
        crash.result(TIMEOUT)
    assert [f.result(TIMEOUT) for f in rest] == [0, 1, 2, 3]


def test_window_calls_cancelled_while_held(make_executor):
    ex = make_executor(workers=1)
    busy = ex.submit(pyfuncs.sleep_then, 1, "busy")
    held = [ex.submit(pyfuncs.add, i) for i in range(2)]
    time.sleep(0.3)  # dispatched by now, and held by the worker
    assert all(f.cancel() for f in held)
    assert busy.result(TIMEOUT) == "busy"
    assert all(f.cancelled() for f in held)
    assert ex.submit(pyfuncs.add, 7).result(TIMEOUT) == 7
    assert ex.stats()["cores_used"] == 0


def test_window_calls_of_a_killed_worker_run_elsewhere(make_executor,
                                                       tmp_path):
    ex = make_executor(workers=2)
    marker = str(tmp_path / "started")
    f = ex.submit(pyfuncs.once_then_value, marker, 60, "ran again")
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(marker):
        assert time.monotonic() < deadline, "the call never started"
        time.sleep(0.02)
    # Both workers' cores and windows fill: some of these wait behind f.
    rest = [ex.submit(pyfuncs.sleep_then, 0.2, i) for i in range(6)]
    time.sleep(0.1)
    with open(marker) as m:
        pid = int(m.read())
    workers = {p.pid for p in ex._local.procs}
    while pid not in workers:
        pid = _parent(pid)
        assert pid > 1, "the library is not under a local worker"
    os.kill(pid, signal.SIGKILL)
    assert [g.result(TIMEOUT) for g in rest] == list(range(6))
    assert f.result(TIMEOUT) == "ran again"
