"""Ctrl-C and SIGTERM on a program using an Executor (docs/python.md,
"Interrupts"): one signal stops it promptly, cancels its calls (their
processes are gone) and removes its temporary directories; a second one
during that cleanup ends it at once.

Each test runs a real program in a subprocess with TMPDIR set to an empty
directory, and finds the processes it started by a variable in their
environment (workers and library instances inherit it)."""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

import xylem
from conftest import SLOW, TIMEOUT

PROGRAM = """
import os, sys, time
import xylem

def sleeper(started, i):
    open(os.path.join(started, str(i)), "w").close()
    time.sleep(60)
    return i

def main(ex):
    fs = [ex.submit(sleeper, sys.argv[1], i) for i in range(4)]
    for f in fs:
        f.result()

if sys.argv[2] == "with":
    with xylem.Executor(workers=2) as ex:
        main(ex)
else:
    # No with block: the interpreter's exit shuts it down.
    main(xylem.Executor(workers=2))
"""


def _marked(mark):
    """The pids of processes whose environment holds mark."""
    needle = f"XYLEM_TEST_MARK={mark}".encode()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue  # gone, or not ours to read
        if needle in env.split(b"\0"):
            pids.append(int(name))
    return pids


def _children(pid):
    """The pids of pid's child processes."""
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The field after the command's closing parenthesis is the state,
        # then the parent's pid.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(name))
    return kids


def _wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def program(tmp_path):
    """Starts the program with its own TMPDIR and a fresh mark; kills
    whatever it left when the test ends."""
    runs = []

    def start(how="with"):
        mark = uuid.uuid4().hex
        tmp = tmp_path / "tmp"
        started = tmp_path / "started"
        tmp.mkdir()
        started.mkdir()
        src = tmp_path / "prog.py"
        src.write_text(PROGRAM)
        pkg = os.path.dirname(os.path.dirname(xylem.__file__))
        path = os.environ.get("PYTHONPATH")
        env = dict(os.environ, TMPDIR=str(tmp), XYLEM_TEST_MARK=mark,
                   PYTHONPATH=pkg + (os.pathsep + path if path else ""))
        # Its output goes to a file: a pipe would stay open as long as
        # any process it left behind.
        with open(tmp_path / "stderr", "wb") as err:
            p = subprocess.Popen(
                [sys.executable, str(src), str(started), how], env=env,
                stdout=subprocess.DEVNULL, stderr=err)
        p.stderr_path = tmp_path / "stderr"
        runs.append((p, mark))
        # Both workers are running a call.
        _wait_until(lambda: len(os.listdir(started)) >= 2 or
                    p.poll() is not None, TIMEOUT, "the calls to start")
        assert p.poll() is None, p.stderr_path.read_text()[-3000:]
        # The workers and their library instances carry the mark.
        assert len(_marked(mark)) >= 5, _marked(mark)
        return p, mark, tmp

    yield start
    for p, mark in runs:
        if p.poll() is None:
            p.kill()
        p.wait(TIMEOUT)
        for pid in _marked(mark):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _finish(p, mark, tmp, sent_at, limit, procs=True):
    """Waits for p to exit within limit seconds of sent_at; then nothing
    of it may be left: no file in TMPDIR and, with procs, no marked
    process."""
    try:
        p.wait(timeout=limit * SLOW + 10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(TIMEOUT)
        raise AssertionError("the program did not exit: "
                             + p.stderr_path.read_text()[-3000:])
    took = time.monotonic() - sent_at
    err = p.stderr_path.read_text()
    assert took < limit * SLOW, f"took {took:.1f} s\n{err[-3000:]}"
    if procs:
        # Every process it started is gone once it has exited (the
        # workers stop their calls before they exit).
        _wait_until(lambda: not _marked(mark), 2 * SLOW,
                    "the processes to end")
    assert os.listdir(tmp) == []
    return err


@pytest.mark.parametrize("how", ["with", "atexit"])
@pytest.mark.parametrize("sig, status", [
    # An uncaught KeyboardInterrupt ends Python by SIGINT itself (a shell
    # shows 130); SIGTERM becomes SystemExit(143).
    (signal.SIGINT, -signal.SIGINT),
    (signal.SIGTERM, 128 + signal.SIGTERM),
])
def test_one_signal_cancels_and_cleans_up(program, sig, status, how):
    p, mark, tmp = program(how)
    sent = time.monotonic()
    p.send_signal(sig)
    err = _finish(p, mark, tmp, sent, limit=3)
    assert p.returncode == status, err[-3000:]
    if sig == signal.SIGINT:
        assert err.count("KeyboardInterrupt") == 1, err
    # The workers were told to stop; they did not lose their manager.
    assert "lost the manager" not in err, err


def test_second_sigint_during_cleanup_exits_at_once(program):
    p, mark, tmp = program()
    # A worker that does not answer keeps the cleanup waiting for it (5 s
    # to exit when told, 2 s after SIGTERM) ...
    workers = _children(p.pid)
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGSTOP)
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert p.poll() is None, "the cleanup did not wait for the worker"
    # ... until a second ^C, which kills it. (A worker killed while
    # stopped cannot stop its own call, whose library instance then runs
    # until the call returns: the fixture kills it.)
    p.send_signal(signal.SIGINT)
    err = _finish(p, mark, tmp, sent, limit=2.5, procs=False)
    assert p.returncode == -signal.SIGINT, err[-3000:]


def test_with_block_left_on_an_error_does_not_wait():
    start = time.monotonic()
    with pytest.raises(ValueError, match="stop here"):
        with xylem.Executor(workers=1) as ex:
            f = ex.submit(time.sleep, 60)
            queued = ex.submit(time.sleep, 60)
            # The first call is running (the second waits for the core).
            _wait_until(lambda: ex.stats()["tasks_running"] >= 1, TIMEOUT,
                        "a call to run")
            raise ValueError("stop here")
    assert time.monotonic() - start < 10 * SLOW
    assert f.cancelled() and queued.cancelled()
    assert not os.path.exists(ex._tmpdir)


def test_sigterm_handler_lives_as_long_as_the_executors():
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("SIGTERM is handled already here")
    a = xylem.Executor(workers=0)
    b = xylem.Executor(workers=0)
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    a.shutdown()
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    b.shutdown()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
