"""XylemExecutor's output Files under Parsl: an output reaches its path
whole, and only from a task that Xylem ran to its end, never from one
cancelled at shutdown; a file written again is read again with its new
content (docs/python.md, "Parsl"). Each test loads its own
DataFlowKernel, with real local workers."""

import os
import time

import pytest

parsl = pytest.importorskip("parsl")

from parsl import File, bash_app, python_app  # noqa: E402
from parsl.app.errors import BashExitFailure  # noqa: E402
from parsl.config import Config  # noqa: E402

from conftest import TIMEOUT  # noqa: E402
from xylem.parsl import XylemExecutor  # noqa: E402


@bash_app
def fail_before_writing(outputs=()):
    return "exit 1"


@bash_app
def fail_after_writing(outputs=()):
    return f"echo partial > {outputs[0]}; exit 1"


@bash_app
def write(text, outputs=()):
    return f"echo {text} > {outputs[0]}"


@python_app
def read(inputs=()):
    with open(inputs[0]) as f:
        return f.read()


def load(tmp_path, **kwargs):
    """Loads a DataFlowKernel with two local workers; returns it."""
    run_dir = tmp_path / "runinfo"
    config = Config(executors=[XylemExecutor(workers=2, **kwargs)],
                    run_dir=str(run_dir), strategy="none")
    return parsl.load(config)


@pytest.fixture
def dfk(tmp_path, monkeypatch):
    """A DataFlowKernel in the default mode, run from tmp_path."""
    monkeypatch.chdir(tmp_path)
    parsl.clear()
    d = load(tmp_path)
    yield d
    d.cleanup()
    parsl.clear()


def wait_for_one(futures):
    """Waits (with the tests' timeout) until one of futures is done."""
    deadline = time.monotonic() + TIMEOUT
    while not any(f.done() for f in futures):
        assert time.monotonic() < deadline, "no task ended in time"
        time.sleep(0.001)


@pytest.mark.parametrize("shared_fs", [False, True])
def test_cancelled_tasks_leave_no_outputs(tmp_path, monkeypatch, shared_fs):
    # Failing apps, cut short by the shutdown as soon as the first ends:
    # before the fix, the worker side's empty placeholder of a task that
    # was cancelled while its outputs came back stayed at the path (in 4
    # to 5 runs of 8). Eight runs, as the newcomer's trial did.
    for run in range(8):
        here = tmp_path / str(run)
        here.mkdir()
        monkeypatch.chdir(here)
        parsl.clear()
        dfk = load(here, shared_fs=shared_fs)
        futures = [fail_before_writing(outputs=[File(f"out/{i}.txt")])
                   for i in range(20)]
        wait_for_one(futures)
        dfk.cleanup()
        parsl.clear()
        left = sorted(os.listdir(here / "out")) \
            if (here / "out").exists() else []
        assert left == [], f"run {run}: files left at output paths"
        assert all(f.done() for f in futures)


def test_failed_app_keeps_what_it_wrote(dfk, tmp_path):
    # As on a shared filesystem (Parsl's own test_launch_apps expects
    # it); only Xylem's placeholders never reach a path.
    with pytest.raises(BashExitFailure):
        fail_after_writing(outputs=[File("partial.txt")]).result(TIMEOUT)
    assert (tmp_path / "partial.txt").read_text() == "partial\n"


def test_output_not_made_keeps_the_file_there(dfk, tmp_path):
    (tmp_path / "old.txt").write_text("old\n")
    with pytest.raises(BashExitFailure):
        fail_before_writing(outputs=[File("old.txt")]).result(TIMEOUT)
    assert (tmp_path / "old.txt").read_text() == "old\n"


def test_file_written_again_is_read_again(dfk, tmp_path):
    f = File(str(tmp_path / "x.txt"))
    write("one", outputs=[f]).result(TIMEOUT)
    assert read(inputs=[f]).result(TIMEOUT) == "one\n"
    write("two", outputs=[f]).result(TIMEOUT)
    assert (tmp_path / "x.txt").read_text() == "two\n"
    assert read(inputs=[f]).result(TIMEOUT) == "two\n"
    # Nothing but the output itself is left beside it.
    assert sorted(os.listdir(tmp_path)) == ["runinfo", "x.txt"]
