"""XylemExecutor(shared_fs=True) under Parsl: apps run where Parsl's own
executors run them, in the submitting side's working directory (or the
executor's working_dir), so that relative paths in commands, in Python
apps and in stdout and stderr resolve there (docs/python.md, "Parsl").
Each test loads its own DataFlowKernel, with real local workers."""

import os

import pytest

parsl = pytest.importorskip("parsl")

from parsl import bash_app, python_app  # noqa: E402
from parsl.config import Config  # noqa: E402

from conftest import TIMEOUT  # noqa: E402
from xylem.parsl import XylemExecutor  # noqa: E402


@bash_app
def tool(msg, stdout=None, stderr=None):
    return f"./tool.sh {msg}"


@bash_app
def count(stdout=None):
    return "wc -l < data.txt > counted.txt"


@python_app
def read_write():
    with open("data.txt") as f, open("made.txt", "w") as g:
        g.write(f.read().upper())
    return os.getcwd()


@python_app
def wander(to):
    os.chdir(to)
    return os.getcwd()


@python_app
def where():
    return os.getcwd()


def load(tmp_path, **kwargs):
    """Loads a DataFlowKernel with two local workers and shared_fs=True;
    returns it."""
    config = Config(executors=[XylemExecutor(workers=2, shared_fs=True,
                                             **kwargs)],
                    run_dir=str(tmp_path / "runinfo"), strategy="none")
    return parsl.load(config)


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A submitting directory, the working directory when the executor
    starts, holding tool.sh and data.txt."""
    d = tmp_path / "submit"
    d.mkdir()
    (d / "tool.sh").write_text("#!/bin/sh\necho tool $1\necho err $1 >&2\n")
    (d / "tool.sh").chmod(0o755)
    (d / "data.txt").write_text("a\nb\n")
    monkeypatch.chdir(d)
    parsl.clear()
    dfk = load(tmp_path)
    yield d
    dfk.cleanup()
    parsl.clear()


def test_bash_app_runs_in_the_submitting_directory(here):
    # Before: exit 127, ./tool.sh not found in the task's sandbox.
    f = tool("hi", stdout="out.txt", stderr="err.txt")
    assert f.result(TIMEOUT) == 0
    assert (here / "out.txt").read_text() == "tool hi\n"
    assert (here / "err.txt").read_text().endswith("err hi\n")
    # An undeclared file that the command writes lands in place too.
    assert count().result(TIMEOUT) == 0
    assert (here / "counted.txt").read_text().strip() == "2"


def test_python_app_runs_in_the_submitting_directory(here):
    assert read_write().result(TIMEOUT) == str(here)
    assert (here / "made.txt").read_text() == "A\nB\n"


def test_each_call_starts_there_again(here, tmp_path):
    # An app that moves elsewhere does not move the calls after it,
    # which the same warm library instances run.
    assert [wander(str(tmp_path)).result(TIMEOUT) for _ in range(4)] == \
        [str(tmp_path)] * 4
    assert [where().result(TIMEOUT) for _ in range(4)] == [str(here)] * 4


def test_working_dir(tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    (other / "tool.sh").write_text("#!/bin/sh\necho there $1\n")
    (other / "tool.sh").chmod(0o755)
    monkeypatch.chdir(tmp_path)
    parsl.clear()
    dfk = load(tmp_path, working_dir=str(other))
    try:
        assert where().result(TIMEOUT) == str(other)
        assert tool("x", stdout="out.txt").result(TIMEOUT) == 0
        assert (other / "out.txt").read_text() == "there x\n"
        assert not (tmp_path / "out.txt").exists()
    finally:
        dfk.cleanup()
        parsl.clear()


def test_working_dir_needs_shared_fs():
    with pytest.raises(ValueError, match="shared_fs"):
        XylemExecutor(working_dir="/tmp")
