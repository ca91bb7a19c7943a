"""A worker's life around its manager: a worker told to stop by a manager
that shuts down cleanly exits 0 with no error line, while one whose
manager is killed exits non-zero; a worker started before its manager
waits for it (--connect-timeout), but a manager that refuses it (a wrong
secret) ends it at once."""

import re
import secrets
import signal
import socket
import time

from helpers import task, write_workflow

ERROR_LINE = re.compile(r"^\S+ \S+ error ", re.M)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def standing_manager(xylem, secret_file, port=0):
    """`xylem manager` with no local workers; returns (proc, port)."""
    p = xylem.start("manager", "--host", "127.0.0.1", "--port", port,
                    "--secret-file", secret_file)
    m = p.wait_line(r"listening on port (\d+)", 30)
    return p, int(m.group(1))


def test_worker_exits_0_when_manager_stops(xylem, secret_file):
    mgr, port = standing_manager(xylem, secret_file)
    w = xylem.worker(port, secret_file, 1)
    mgr.wait_line(r"worker \S+ ready", 30)
    mgr.signal(signal.SIGTERM)
    assert mgr.wait(30) == 0, mgr.output
    assert w.wait(30) == 0, w.output
    assert not ERROR_LINE.search(w.output), w.output
    assert "shut down by the manager" in w.output, w.output


def test_worker_exits_0_after_run(xylem, tmp_path, secret_file):
    out = tmp_path / "out"
    wf = write_workflow(tmp_path / "wf.json", [
        task(f"t{i}", f"echo {i} > o", outputs=[(out / str(i), "o")])
        for i in range(3)])
    mgr, port = xylem.manager(wf, secret_file)
    w = xylem.worker(port, secret_file, 1)
    assert mgr.wait(60) == 0, mgr.output
    assert w.wait(30) == 0, w.output
    assert not ERROR_LINE.search(w.output), w.output
    assert "shut down by the manager" in w.output, w.output


def test_worker_fails_when_manager_killed(xylem, secret_file):
    mgr, port = standing_manager(xylem, secret_file)
    w = xylem.worker(port, secret_file, 1)
    mgr.wait_line(r"worker \S+ ready", 30)
    mgr.signal(signal.SIGKILL)
    assert w.wait(30) == 1, w.output
    assert re.search(r" error worker: lost the manager", w.output), w.output
