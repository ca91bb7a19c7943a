"""Files given back to the manager (docs/dataplane.md, "When a file is
freed"; docs/python.md, "Files"): the extension's handles count
declarations and release() gives one back; the Executor declares
outputs, per_call inputs, fresh calls' files and large payloads for one
call, gives a Temp back when it is collected, and release() gives back a
kept input. A long stream of calls with files of their own leaves the
manager's count of files where it started."""

import gc
import time

import pytest

import pyfuncs
import xylem
from conftest import TIMEOUT
from xylem import _core


def settled(stats, key, want, timeout=TIMEOUT):
    """Polls stats()[key] until want(value) holds; returns the value. The
    manager frees files at its loop's next turn, not at release."""
    deadline = time.monotonic() + timeout
    while True:
        v = stats()[key]
        if want(v) or time.monotonic() > deadline:
            return v
        time.sleep(0.02)


def test_handles_count_declarations(tmp_path):
    m = _core.Manager(secret=b"s", host="127.0.0.1")
    try:
        p = str(tmp_path / "a")
        a = m.declare_file(p)
        assert m.declare_file(p) == a  # one handle, two declarations
        t = m.declare_temp()
        assert settled(m.stats, "files", lambda v: v == 2) == 2
        m.release(a)
        m.release(t)
        assert settled(m.stats, "files", lambda v: v == 1) == 1
        m.release(a)
        assert settled(m.stats, "files", lambda v: v == 0) == 0
        with pytest.raises(ValueError, match="no file handle"):
            m.release(a)  # a double release: refused, nothing else
        with pytest.raises(ValueError, match="no file handle"):
            m.submit(1, command="true", inputs=[(a, "x")])
        b = m.declare_file(p)  # declared again: a new handle
        assert b != a
    finally:
        m.close()
    m.release(b)  # after close: nothing to do


def test_stream_of_calls_with_their_own_files_stays_flat(make_executor,
                                                          tmp_path):
    ex = make_executor(workers=1)
    start = ex.stats()["files"]

    def round_(r, n):
        fs = []
        for i in range(n):
            src = tmp_path / f"in-{r}-{i}"
            src.write_text(f"call {r} {i}\n")
            fs.append(ex.options(
                inputs=[xylem.File(src, name="a", per_call=True)],
                outputs=[xylem.File(tmp_path / f"out-{r}-{i}", name="b")])
                .submit(pyfuncs.upper_file, "a", "b"))
        for f in fs:
            f.result(TIMEOUT)
        return settled(ex.stats, "files", lambda v: v <= start)

    assert round_(1, 100) == start
    assert round_(2, 100) == start
    assert (tmp_path / "out-2-99").read_text() == "CALL 2 99\n"
    # Their objects stay known while the worker holds copies, at most
    # the manager's window of idle ones.
    assert ex.stats()["objects"] <= 1024


def test_fresh_calls_and_large_payloads_give_their_files_back(
        make_executor):
    ex = make_executor(workers=1, fresh=True)
    start = ex.stats()["files"]
    assert [f.result(TIMEOUT) for f in
            [ex.submit(pyfuncs.add, i, 1) for i in range(10)]] == \
        list(range(1, 11))
    assert settled(ex.stats, "files", lambda v: v <= start) == start
    warm = make_executor(workers=1)
    start = warm.stats()["files"]
    big = b"x" * (2 << 20)  # travels as a file
    assert warm.submit(pyfuncs.nbytes, big).result(TIMEOUT) == len(big)
    assert settled(warm.stats, "files", lambda v: v <= start) == start


def test_temp_given_back_when_collected(ex, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("temp\n")
    start = ex.stats()["files"]
    mid = xylem.Temp("mid.txt")
    a = ex.options(inputs=[xylem.File(src, name="a.txt")],
                   outputs=[mid]).submit(pyfuncs.upper_file, "a.txt",
                                         "mid.txt")
    b = ex.options(inputs=[mid], outputs=[xylem.File(tmp_path / "out",
                                                     name="b.txt")]) \
        .submit(pyfuncs.upper_file, "mid.txt", "b.txt")
    del mid  # its reader, submitted, still reads it
    gc.collect()
    assert b.result(TIMEOUT) == 5 and a.result(TIMEOUT) == 5
    assert (tmp_path / "out").read_text() == "TEMP\n"
    # Left: the input, kept for later calls, until released.
    assert settled(ex.stats, "files", lambda v: v <= start + 1) == start + 1
    ex.release(xylem.File(src, name="a.txt"), xylem.File(src))
    assert settled(ex.stats, "files", lambda v: v <= start) == start
    # Named again: declared (and hashed) again.
    c = ex.options(inputs=[xylem.File(src, name="a.txt")],
                   outputs=[xylem.File(tmp_path / "again", name="c.txt")]) \
        .submit(pyfuncs.upper_file, "a.txt", "c.txt")
    assert c.result(TIMEOUT) == 5
    assert (tmp_path / "again").read_text() == "TEMP\n"
