"""Batched calls (docs/python.md, "Batched calls"): Executor.map in
chunks with the standard library's semantics, bursts of submits sent
together, and the Parsl executor's apps packed the same way."""

import itertools
import statistics
import threading
import time

import pytest

import pyfuncs
import xylem
from conftest import SLOW, TIMEOUT


def test_map_in_order(make_executor):
    ex = make_executor()
    assert list(ex.map(pyfuncs.square, range(5000))) == \
        [i * i for i in range(5000)]
    assert list(ex.map(pyfuncs.add, range(300), range(300, 0, -1),
                       chunksize=7)) == [300] * 300
    assert list(ex.map(pyfuncs.square, [], chunksize=3)) == []
    with pytest.raises(ValueError):
        ex.map(pyfuncs.square, range(3), chunksize=0)


def test_map_sends_chunks(make_executor):
    """A map of many calls is few tasks: one per chunk, and the auto
    size grows from the calls' measured cost."""
    ex = make_executor()
    before = ex.stats()["tasks_succeeded"]
    assert sum(ex.map(pyfuncs.square, range(20000))) == \
        sum(i * i for i in range(20000))
    tasks = ex.stats()["tasks_succeeded"] - before
    assert tasks < 200, tasks
    before = ex.stats()["tasks_succeeded"]
    list(ex.map(pyfuncs.square, range(1000), chunksize=100))
    assert ex.stats()["tasks_succeeded"] - before == 10


def test_map_is_lazy(make_executor):
    """An infinite input, a break: the map reads a bounded way ahead."""
    ex = make_executor()
    read = 0

    def numbers():
        nonlocal read
        for i in itertools.count():
            read += 1
            yield i

    for i, v in enumerate(ex.map(pyfuncs.square, numbers())):
        assert v == i * i
        if i == 3000:
            break
    assert read < 3000 + 100000, read
    # Work starts when map is called, before the first next().
    gen = ex.map(pyfuncs.square, numbers(), chunksize=10)
    assert read > 3000
    del gen


def test_map_exception_at_its_item(make_executor):
    ex = make_executor()
    got = []
    with pytest.raises(ValueError, match="bad item 1234"):
        for v in ex.map(pyfuncs.fail_at, range(5000), itertools.repeat(1234)):
            got.append(v)
    assert got == list(range(1234))
    # The executor goes on.
    assert list(ex.map(pyfuncs.square, range(3))) == [0, 1, 4]


def test_map_unpicklable_item(make_executor):
    ex = make_executor()
    got = []
    items = [1, 2, threading.Lock(), 4]
    with pytest.raises(xylem.PickleError):
        for v in ex.map(pyfuncs.fail_at, items, itertools.repeat(-1),
                        chunksize=4):
            got.append(v)
    assert got == [1, 2]


def test_map_timeout(make_executor):
    ex = make_executor()
    t0 = time.monotonic()
    gen = ex.map(pyfuncs.sleep_then, [0, 0, 20], ["a", "b", "c"],
                 timeout=1.0 * SLOW, chunksize=1)
    assert next(gen) == "a"
    assert next(gen) == "b"
    with pytest.raises(TimeoutError):
        next(gen)
    took = time.monotonic() - t0
    assert 0.9 * SLOW <= took < 10 * SLOW, took


def test_map_streams_chunks(make_executor):
    """The first chunk's results come back before the last chunk ends."""
    ex = make_executor()
    t0 = time.monotonic()
    gen = ex.map(pyfuncs.sleep_then, [0] * 10 + [3 * SLOW],
                 range(11), chunksize=5)
    assert next(gen) == 0
    first = time.monotonic() - t0
    assert list(gen) == list(range(1, 11))
    total = time.monotonic() - t0
    assert first < 2.0 * SLOW, first
    assert total >= 3.0 * SLOW and first < total - 1.0


def test_map_chunk_crash_fails_its_items(make_executor):
    """A library that dies in a chunk fails that chunk's first item, with
    the crash's exception."""
    ex = make_executor()
    with pytest.raises(xylem.LibraryCrashed):
        list(ex.map(pyfuncs.crash, [3, 3], chunksize=2))


def test_burst_of_submits_shares_messages(make_executor):
    ex = make_executor()
    before = ex.stats()["tasks_succeeded"]
    fs = [ex.submit(pyfuncs.fail_at, i, 77) for i in range(3000)]
    for i, f in enumerate(fs):
        if i == 77:
            with pytest.raises(ValueError, match="bad item 77"):
                f.result(TIMEOUT)
        else:
            assert f.result(TIMEOUT) == i
    tasks = ex.stats()["tasks_succeeded"] - before
    assert ex._batching.burst_calls > 0
    assert tasks < 3000, tasks


def test_burst_cancel_one(make_executor):
    ex = make_executor(workers=1)
    block = ex.submit(pyfuncs.sleep_then, 1.0 * SLOW, "x")
    fs = [ex.submit(pyfuncs.square, i) for i in range(200)]
    assert fs[150].cancel()
    assert block.result(TIMEOUT) == "x"
    for i, f in enumerate(fs):
        if i != 150:
            assert f.result(TIMEOUT) == i * i
    assert fs[150].cancelled()


def _lone_p50(ex, n=200):
    ts = []
    for i in range(n):
        t = time.perf_counter()
        ex.submit(pyfuncs.square, i).result(TIMEOUT)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def test_lone_submit_not_delayed(make_executor):
    """A lone call is sent at once, as before bursts were batched: its
    round trip is no longer than with batching off (same run)."""
    ex = make_executor()
    _lone_p50(ex, 50)
    on, off = [], []
    for _ in range(3):
        ex._batching.submits = True
        on.append(_lone_p50(ex))
        ex._batching.submits = False
        off.append(_lone_p50(ex))
    assert min(on) <= 1.5 * min(off) + 0.0002, (on, off)


def test_parsl_apps_packed(tmp_path):
    parsl = pytest.importorskip("parsl")
    from parsl import python_app
    from parsl.config import Config
    from xylem.parsl import XylemExecutor

    @python_app
    def sq(x):
        return x * x

    xe = XylemExecutor(workers=2)
    config = Config(executors=[xe], run_dir=str(tmp_path / "runinfo"),
                    strategy="none")
    with parsl.load(config):
        futures = [sq(i) for i in range(2000)]
        assert [f.result(TIMEOUT) for f in futures] == \
            [i * i for i in range(2000)]
        b = xe._xy._batching
        assert b.burst_calls > 0 and b.bursts < b.burst_calls
    parsl.clear()


def test_burst_with_a_large_function(make_executor):
    """A function whose pickle travels by reference (over 4 KiB), in
    bursts and in map chunks: each call still gets it."""
    import functools
    ex = make_executor()
    big = functools.partial(pyfuncs.nbytes, b"x" * 8000)
    fs = [ex.submit(big) for _ in range(400)]
    assert [f.result(TIMEOUT) for f in fs] == [8000] * 400
    assert ex._batching.burst_calls > 0
    same = functools.partial(pyfuncs.fail_at, bad=b"y" * 8000)
    assert list(ex.map(same, range(500))) == list(range(500))



def test_parsl_apps_packed_with_a_provider(tmp_path):
    """With a provider, whose jobs Xylem's scaler sizes, apps submitted
    faster than they run still travel in batches once their function is
    measured (before, each alone), and the scaler still asks for the
    jobs that many tasks would need: its maximum here."""
    parsl = pytest.importorskip("parsl")
    from parsl import python_app
    from parsl.config import Config
    from parsl.providers import LocalProvider
    from xylem.parsl import XylemExecutor

    @python_app
    def nap(s):
        import time
        time.sleep(s)
        return s

    provider = LocalProvider(init_blocks=0, min_blocks=0, max_blocks=3)
    xe = XylemExecutor(label="xylem_bursts", cores_per_worker=2,
                       provider=provider, idle_timeout=30)
    config = Config(executors=[xe], run_dir=str(tmp_path / "runinfo"),
                    strategy="none")
    with parsl.load(config):
        b = xe._xy._batching
        n = 3000
        fs = [nap(0.0002) for _ in range(n)]
        assert [f.result(TIMEOUT) for f in fs] == [0.0002] * n
        tasks = (n - b.burst_calls) + b.bursts
        assert b.burst_calls > b.bursts and tasks < n, tasks
        pool = xe._xy.status()["pools"][0]
        assert pool["submitted"] == 3, pool
    parsl.clear()
