"""The errors a user will meet, each on its own Future, costing nothing
else: unpicklable functions, arguments and results, missing inputs; and
how failures are classed: by codes (the result, the failure that the
worker reports, the exit status), never by the text of an error or of
what the call printed."""

import pickle
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


# Classed by code: a call's own words cannot make it another class.

MISMATCH_LINE = "xylem: interpreter mismatch: only a call's print"


@pytest.mark.parametrize("status", [3, 78])
def test_a_crash_that_prints_the_mismatch_line_is_a_crash(make_executor,
                                                          status):
    # 78 is the status reserved for a mismatch, but a mismatch is known
    # by it only before the instance is ready, not during a call.
    ex = make_executor(workers=1)
    f = ex.submit(pyfuncs.crash, status, MISMATCH_LINE)
    with pytest.raises(xylem.LibraryCrashed) as info:
        f.result(TIMEOUT)
    assert type(info.value) is xylem.LibraryCrashed
    assert info.value.exit_code == status
    assert MISMATCH_LINE in info.value.output  # there for people
    assert ex.submit(pyfuncs.add, 1).result(TIMEOUT) == 1


def test_a_fresh_crash_that_prints_the_mismatch_line_is_not_one(ex):
    f = ex.options(fresh=True).submit(pyfuncs.crash, 5, MISMATCH_LINE)
    with pytest.raises(xylem.TaskFailed, match="status 5") as info:
        f.result(TIMEOUT)
    assert type(info.value) is xylem.TaskFailed


@pytest.mark.parametrize("message", [
    "library xylem-py-1-1 exited with status 3 during a call",
    "xylem: interpreter mismatch: the manager runs Python 2.7"])
@pytest.mark.parametrize("output", [False, True])
def test_exceptions_that_read_like_xylem_errors_stay_themselves(
        ex, tmp_path, message, output):
    opts = {"outputs": [xylem.File(tmp_path / "never.txt")]} if output \
        else {}
    f = ex.options(**opts).submit(pyfuncs.fail, message)
    with pytest.raises(ValueError) as info:
        f.result(TIMEOUT)
    assert str(info.value) == message


def _failure(kind, result, exit_code=1, output=b"", error="",
             failure=None):
    from xylem import _core, executor
    if failure is None:
        failure = _core.FAILURE_NONE
    return executor._failure(kind, result, exit_code, output, error, "w",
                             failure)


def test_failures_classed_by_code_not_text():
    from xylem import _calls, _core
    app = _core.RESULT_APP_FAILED
    start, exit_ = _core.FAILURE_LIBRARY_START, _core.FAILURE_LIBRARY_EXIT
    status = _calls.MISMATCH_STATUS

    # A mismatch: the reserved status before the instance was ready, or
    # from a fresh runner, whatever the texts say.
    e = _failure("call", app, status, b"", "anything", start)
    assert type(e) is xylem.InterpreterMismatch
    assert _calls.MISMATCH_TEXT in e.reason  # a stand-in line for people
    e = _failure("call", app, status, b"x\n" + MISMATCH_LINE.encode(), "",
                 start)
    assert e.reason == MISMATCH_LINE
    e = _failure("fresh", app, status, b"", "exited with status 78")
    assert type(e) is xylem.InterpreterMismatch

    # Not a mismatch, whatever the log says.
    log = MISMATCH_LINE.encode()
    for code, failure in ((1, start), (status, exit_), (3, exit_)):
        e = _failure("call", app, code, log, "no library word", failure)
        assert type(e) is xylem.LibraryCrashed, (code, failure)
        assert e.reason == "no library word"
    e = _failure("fresh", app, 5, log, "exited with status 5")
    assert type(e) is xylem.TaskFailed

    # An instance's end is known by the failure, not by "library " in
    # the error; without one, the output is the library's reply.
    e = _failure("call", app, -1, b"", "library nope is not defined")
    assert type(e) is xylem.TaskFailed
    reply = _calls.error_reply(KeyError("k"))
    e = _failure("call", app, 0, reply, "library-like text: never.txt")
    assert type(e) is KeyError
    e = _failure("call", _core.RESULT_RESOURCES_EXHAUSTED, -1,
                 b"printed\n", "library x: over its time limit", exit_)
    assert type(e) is xylem.ResourcesExhausted
    assert e.output == "printed\n"
    assert pickle.loads(reply)[0] == "err"


def test_errors_are_task_failed(ex):
    for cls in (xylem.LibraryCrashed, xylem.InterpreterMismatch,
                xylem.InputMissing, xylem.ResourcesExhausted,
                xylem.WorkerFailed):
        assert issubclass(cls, xylem.TaskFailed)
