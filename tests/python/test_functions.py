"""How a call's function reaches the workers (docs/python.md, "Warm and
fresh"): a pickle over FunctionRefs.INLINE_MAX travels inline with its
first call and then as an object that each worker fetches once and keeps;
a smaller one always inline. Different and redefined functions, fresh
calls, large payloads and a worker that joins later all get the right
function."""

import os
import subprocess

import pytest

import pyfuncs
import xylem
from conftest import TIMEOUT
from xylem import _calls

BIG = 64 * 1024  # bytes a big function carries: well over INLINE_MAX


def big_function(tag, size=BIG):
    """A function whose pickle holds size bytes of its own (by value, as
    a closure cell), so that it travels by reference."""
    pad = bytes([tag % 256]) * size

    def f(i):
        return tag, i, len(pad)
    return f


def pickled_size(fn):
    return len(_calls.pickle_function(fn)[1])


class Recorder:
    """Stands in for the executor's manager and keeps each submitted
    payload's size (the rest goes through to the manager)."""

    def __init__(self, manager):
        self._manager = manager
        self.payloads = []

    def submit(self, key, **spec):
        self.payloads.append(len(spec.get("payload") or b""))
        return self._manager.submit(key, **spec)

    def __getattr__(self, name):
        return getattr(self._manager, name)


def recording(ex):
    rec = Recorder(ex._manager)
    ex._manager = rec
    return rec


def test_a_function_reaches_a_worker_once(make_executor):
    ex = make_executor(workers=1)
    rec = recording(ex)
    f = big_function(1)
    size = pickled_size(f)
    assert size > BIG
    # One at a time, then many at once: the worker and its instance
    # already have it for all but the first two.
    assert [ex.submit(f, i).result(TIMEOUT) for i in range(5)] == \
        [(1, i, BIG) for i in range(5)]
    assert list(ex.map(f, range(30), timeout=TIMEOUT)) == \
        [(1, i, BIG) for i in range(30)]
    # Inline with the first call only; the rest carry a reference.
    assert rec.payloads[0] > size
    assert max(rec.payloads[1:]) < 1024
    # As a file, the pickle went to the worker once.
    assert size <= ex.stats()["bytes_sent"] < 2 * size


def test_small_functions_always_travel_inline(make_executor):
    ex = make_executor(workers=1)
    rec = recording(ex)
    f = big_function(2, size=1000)
    assert pickled_size(f) <= _calls.FunctionRefs.INLINE_MAX
    assert list(ex.map(f, range(10), timeout=TIMEOUT)) == \
        [(2, i, 1000) for i in range(10)]
    assert min(rec.payloads) > 1000
    assert ex.stats()["bytes_sent"] == 0  # no object made for it
    assert not ex._function_refs.handles


def test_different_and_redefined_functions(make_executor):
    ex = make_executor(workers=2)
    a, b = big_function(3), big_function(4)
    fs = [ex.submit(g, i) for i in range(10) for g in (a, b)]
    assert [x.result(TIMEOUT) for x in fs] == \
        [(t, i, BIG) for i in range(10) for t in (3, 4)]

    # The same name defined again, with another body: each call runs the
    # function it was submitted with.
    pad = b"x" * BIG

    def g(i):
        return "first", i, len(pad)
    first = [ex.submit(g, i) for i in range(5)]

    def g(i):  # noqa: F811 (redefined on purpose)
        return "second", i, len(pad)
    second = [ex.submit(g, i) for i in range(5)]
    assert [x.result(TIMEOUT) for x in first] == \
        [("first", i, BIG) for i in range(5)]
    assert [x.result(TIMEOUT) for x in second] == \
        [("second", i, BIG) for i in range(5)]
    assert len(ex._function_refs.handles) == 4


def test_the_function_file_is_not_in_the_calls_sandbox(make_executor):
    ex = make_executor(workers=1)
    pad = b"y" * BIG

    def listing():
        return sorted(os.listdir(".")), len(pad)
    for _ in range(3):
        assert ex.submit(listing).result(TIMEOUT) == ([], BIG)
    assert ex._function_refs.handles
    # A call with a file of its own sees that file only.
    path = os.path.join(ex._tmpdir, "data.txt")
    with open(path, "w") as fh:
        fh.write("data")
    got = ex.options(inputs=[xylem.File(path)]).submit(listing)
    assert got.result(TIMEOUT) == (["data.txt"], BIG)


def test_fresh_calls_and_large_payloads(make_executor):
    ex = make_executor(workers=1)
    f = big_function(5)
    fresh = ex.options(fresh=True)
    assert [fresh.submit(f, i).result(TIMEOUT) for i in range(3)] == \
        [(5, i, BIG) for i in range(3)]
    assert ex._function_refs.handles  # the later ones by reference
    # Arguments too large for a message: the payload is a file, and the
    # function a reference beside it.
    big_arg = b"z" * (9 << 20)

    def size_of(x):
        return len(x), len(pad)
    pad = b"p" * BIG
    for _ in range(2):
        assert ex.submit(size_of, big_arg).result(TIMEOUT) == \
            (9 << 20, BIG)
        assert fresh.submit(size_of, big_arg).result(TIMEOUT) == \
            (9 << 20, BIG)


def test_a_worker_that_joins_later_gets_the_function(make_executor,
                                                      tmp_path):
    from xylem.workers import find_xylem
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    ex = make_executor(workers=0, secret_file=str(secret))
    f = big_function(6)
    size = pickled_size(f)

    def worker(name):
        return subprocess.Popen(
            [find_xylem(), "worker", f"127.0.0.1:{ex.port}",
             "--secret-file", str(secret), "--cores", "1", "--name", name,
             "--tls-ca", ex.tls_ca],
            stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = worker("first")
    try:
        assert [ex.submit(f, i).result(TIMEOUT) for i in range(3)] == \
            [(6, i, BIG) for i in range(3)]
        sent = ex.stats()["bytes_sent"]
        assert size <= sent < 2 * size
        first.terminate()
        first.wait(TIMEOUT)
        second = worker("second")
        try:
            fs = [ex.submit(f, i) for i in range(3)]
            assert [x.result(TIMEOUT) for x in fs] == \
                [(6, i, BIG) for i in range(3)]
            assert ex.status()["workers"][0]["name"] == "second"
            # It fetched the function itself, once.
            assert ex.stats()["bytes_sent"] - sent == size
        finally:
            ex.shutdown()
            second.wait(TIMEOUT)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


# FunctionRefs and FunctionCache on their own.

def test_function_refs_policy():
    declared = []

    def declare(data):
        declared.append(data)
        return len(declared)
    refs = _calls.FunctionRefs(declare)
    small = b"s" * refs.INLINE_MAX
    big = b"b" * (refs.INLINE_MAX + 1)
    assert [refs.get(b"small", small) for _ in range(3)] == [None] * 3
    assert [refs.get(b"big", big) for _ in range(3)] == [None, 1, 1]
    assert declared == [big]
    # The digests sent once are bounded: one forgotten is inline again.
    refs.SEEN_MAX = 2
    for d in (b"x", b"y", b"z"):
        assert refs.get(d, big) is None
    assert len(refs.seen) <= 2
    assert refs.get(b"x", big) is None


def test_function_cache_reads_the_file_only_for_a_new_digest(tmp_path,
                                                             monkeypatch):
    cache = _calls.FunctionCache()
    digest, data = _calls.pickle_function(pyfuncs.add)
    path = tmp_path / _calls.FN_FILE
    path.write_bytes(data)
    monkeypatch.chdir(tmp_path)
    assert cache.get(digest, _calls.FN_FILE)(2, 3) == 5
    assert not path.exists()  # removed before the call runs
    # Known now: no file needed, none there.
    assert cache.get(digest, _calls.FN_FILE)(1, 1) == 2
    # Inline bytes as ever.
    assert _calls.FunctionCache().get(digest, data)(4) == 4
    with pytest.raises(FileNotFoundError):
        _calls.FunctionCache().get(digest, _calls.FN_FILE)
