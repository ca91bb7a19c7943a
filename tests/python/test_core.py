"""The extension's Manager on its own, without workers: callbacks, refused
submits, synchronous calls, and closing."""

import threading

import pytest

from conftest import TIMEOUT
from xylem import _core


class Recorder:
    """A Manager and the batches its callback received."""

    def __init__(self):
        self.m = _core.Manager(secret=b"test secret", host="127.0.0.1")
        self.batches = []
        self.arrived = threading.Event()
        self.m.set_callback(self.on_results)

    def on_results(self, batch):
        self.batches.append(batch)
        self.arrived.set()

    def results(self, n):
        got = []
        while len(got) < n:
            assert self.arrived.wait(TIMEOUT), "no result came back"
            self.arrived.clear()
            got = [r for b in self.batches for r in b]
        return got


@pytest.fixture
def rec():
    r = Recorder()
    yield r
    r.m.close()


def test_refused_submit_comes_back_through_the_callback(rec):
    rec.m.submit(7, library="no-such-library", payload=b"x")
    (r,) = rec.results(1)
    assert r[0] == 7 and r[1] == _core.RESULT_NOT_SUBMITTED
    assert "no-such-library" in r[4]
    assert _core.result_string(r[1]) == "not submitted"


def test_cancel_by_key(rec):
    manager = rec.m
    manager.submit(3, command="true", tag="t")
    assert manager.cancel(3) is True
    (r,) = rec.results(1)
    assert r[0] == 3 and r[1] == _core.RESULT_CANCELLED
    assert manager.cancel(3) is False  # done: no longer known
    assert manager.cancel(999) is False


def test_synchronous_calls(rec):
    manager = rec.m
    a = manager.declare_file("/etc/hostname")
    assert manager.declare_file("/etc/hostname", "forever") == a
    b = manager.declare_buffer(b"some bytes")
    assert a != b
    manager.declare_library("lib", "python3 -m xylem.library",
                            inputs=[(b, "data")], env={"A": "1"})
    stats = manager.stats()
    assert stats["workers_connected"] == 0 and "decisions" in stats
    assert '"workers"' in manager.status_json()
    assert manager.shutdown_workers() == 0
    assert manager.port > 0


def test_bad_arguments(rec):
    manager = rec.m
    h = manager.declare_buffer(b"x")
    with pytest.raises(ValueError, match="cache level"):
        manager.declare_file("/etc/hostname", "sometimes")
    with pytest.raises(ValueError, match=r"\.\."):
        manager.submit(1, command="true", inputs=[(h, "../escape")])
    with pytest.raises(ValueError, match="buffer cannot be an output"):
        manager.submit(1, command="true", outputs=[(h, "x")])
    with pytest.raises(ValueError, match="no file handle"):
        manager.submit(1, command="true", inputs=[(99, "x")])
    with pytest.raises(ValueError, match="either command or library"):
        manager.submit(1)
    with pytest.raises(ValueError):
        manager.submit(0, command="true")
    with pytest.raises(ValueError, match="name"):
        manager.declare_library("", "cmd")
    with pytest.raises(TypeError, match="secret"):
        _core.Manager()


def test_close_is_idempotent_and_final():
    m = _core.Manager(secret=b"s")
    m.set_callback(lambda batch: None)
    m.submit(1, command="sleep 60")  # outstanding: dropped at close
    m.close()
    m.close()
    assert m.closed
    with pytest.raises(RuntimeError, match="closed"):
        m.submit(2, command="true")
    with pytest.raises(RuntimeError, match="closed"):
        m.stats()


def test_many_managers():
    ms = [_core.Manager(secret=b"s", host="127.0.0.1") for _ in range(8)]
    assert len({m.port for m in ms}) == 8
    for m in ms:
        m.close()
