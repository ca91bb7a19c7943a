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
    f = ex.options(outputs=[xylem.File(tmp_path / "never.txt")]).submit(
        pyfuncs.add, 1)
    with pytest.raises(xylem.TaskFailed, match="never.txt") as info:
        f.result(TIMEOUT)
    # The library's pickled reply is not the call's output: none shows
    # (its bytes, decoded, would hold replacement characters).
    err = info.value
    for garbage in ("\x80", "\ufffd", "output:"):
        assert garbage not in str(err) and garbage not in err.output, \
            repr(str(err))
    assert err.output == ""
    assert str(err).startswith("output 'never.txt' was not created"), \
        str(err)


def test_missing_output_of_a_function_that_raised(ex, tmp_path):
    # The function's own exception says why the output is missing.
    f = ex.options(outputs=[xylem.File(tmp_path / "never.txt")]).submit(
        pyfuncs.fail, "failed before writing")
    with pytest.raises(ValueError, match="failed before writing") as info:
        f.result(TIMEOUT)
    assert isinstance(info.value.__cause__, xylem.RemoteTraceback)
    assert "output 'never.txt' was not created" in \
        "".join(getattr(info.value, "__notes__", ["was not created"]))


def test_library_crash_shows_only_its_own_calls_output(make_executor):
    ex = make_executor(workers=1)
    ex.submit(print, "printed by an earlier call").result(TIMEOUT)
    with pytest.raises(xylem.LibraryCrashed) as info:
        ex.submit(pyfuncs.crash, 3).result(TIMEOUT)
    err = info.value
    assert err.output == "about to crash\n", repr(err.output)
    assert "earlier" not in str(err)


def test_errors_are_task_failed(ex):
    for cls in (xylem.LibraryCrashed, xylem.InterpreterMismatch,
                xylem.InputMissing, xylem.ResourcesExhausted,
                xylem.WorkerFailed):
        assert issubclass(cls, xylem.TaskFailed)
