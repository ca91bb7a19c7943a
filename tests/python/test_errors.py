"""The errors a user will meet, each on its own Future, costing nothing
else: unpicklable functions, arguments and results, missing inputs."""

import threading

import pytest

import pyfuncs
import xylem
from conftest import TIMEOUT


def test_unpicklable_function(ex):
    lock = threading.Lock()
    f = ex.submit(lambda: lock.locked())
    with pytest.raises(xylem.PickleError, match="cannot pickle") as info:
        f.result(TIMEOUT)
    assert isinstance(info.value.__cause__, TypeError)
    assert ex.submit(pyfuncs.add, 1).result(TIMEOUT) == 1


def test_unpicklable_argument(ex):
    f = ex.submit(pyfuncs.add, threading.Lock())
    with pytest.raises(xylem.PickleError):
        f.result(TIMEOUT)


@pytest.mark.parametrize("fresh", [False, True])
def test_unpicklable_result(ex, fresh):
    f = ex.options(fresh=fresh).submit(pyfuncs.return_lock)
    with pytest.raises(xylem.PickleError, match="could not be pickled"):
        f.result(TIMEOUT)
    assert ex.submit(pyfuncs.add, 2).result(TIMEOUT) == 2


@pytest.mark.parametrize("fresh", [False, True])
def test_missing_input(ex, tmp_path, fresh):
    missing = tmp_path / "nope.txt"
    f = ex.options(inputs=[xylem.File(missing)], fresh=fresh).submit(
        pyfuncs.cwd_files)
    with pytest.raises(xylem.InputMissing, match="nope.txt"):
        f.result(TIMEOUT)
    assert ex.submit(pyfuncs.add, 3).result(TIMEOUT) == 3


def test_missing_output(ex, tmp_path):
    f = ex.options(outputs=[xylem.File(tmp_path / "never")]).submit(
        pyfuncs.add, 1)
    with pytest.raises(xylem.TaskFailed, match="never"):
        f.result(TIMEOUT)


def test_errors_are_task_failed(ex):
    for cls in (xylem.LibraryCrashed, xylem.InterpreterMismatch,
                xylem.InputMissing, xylem.ResourcesExhausted,
                xylem.WorkerFailed):
        assert issubclass(cls, xylem.TaskFailed)
