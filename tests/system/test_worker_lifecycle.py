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

from helpers import task, wait_for, write_workflow

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


def test_worker_waits_for_its_manager(xylem, secret_file):
    """A worker started first retries until the manager is up, saying so
    once rather than at every try, then works as any other."""
    port = free_port()
    # At debug level the connection logs each failed try.
    w = xylem.start("worker", f"127.0.0.1:{port}", "--secret-file",
                    secret_file, "--cores", 1,
                    env=dict(xylem.env, XYLEM_LOG="debug"))
    w.wait_line(r"info worker: waiting for the manager at 127\.0\.0\.1:"
                rf"{port} \(cannot connect: connection refused\)", 30)
    wait_for(lambda: w.output.count("debug conn: handshake with") >= 4,
             30, what="four tries")
    assert w.p.poll() is None, w.output
    mgr, _ = standing_manager(xylem, secret_file, port)
    mgr.wait_line(r"worker \S+ ready", 30)
    w.wait_line(r"connected to 127\.0\.0\.1:", 10)
    assert w.output.count("waiting for the manager") == 1, w.output
    assert " warn " not in w.output, w.output
    mgr.signal(signal.SIGTERM)
    assert mgr.wait(30) == 0, mgr.output
    assert w.wait(30) == 0, w.output
    assert not ERROR_LINE.search(w.output), w.output


def test_worker_gives_up_after_connect_timeout(xylem, secret_file):
    port = free_port()
    t0 = time.monotonic()
    w = xylem.worker(port, secret_file, 1, "--connect-timeout", "1.5")
    assert w.wait(30) == 1, w.output
    took = time.monotonic() - t0
    assert 1.5 <= took < 10, (took, w.output)
    assert re.search(r"error worker: cannot connect to the manager at "
                     rf"127\.0\.0\.1:{port}: cannot connect: connection "
                     r"refused \(gave up after 1.5 s, \d+ tries", w.output), \
        w.output


def test_connect_timeout_0_tries_once(xylem, secret_file):
    port = free_port()
    t0 = time.monotonic()
    w = xylem.worker(port, secret_file, 1, "--connect-timeout", "0")
    assert w.wait(30) == 1, w.output
    assert time.monotonic() - t0 < 5
    assert "waiting for the manager" not in w.output
    assert re.search(r"error worker: cannot connect to the manager at "
                     rf"127\.0\.0\.1:{port}: cannot connect: connection "
                     r"refused$", w.output, re.M), w.output


def test_handshake_cut_short_is_retried(xylem, secret_file):
    """A listener that hangs up at once (a manager starting, or one too
    busy): the worker tries again, then gives up when its time is up."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    w = xylem.worker(port, secret_file, 1, "--connect-timeout", "2")
    accepted = 0
    end = time.monotonic() + 30
    try:
        while w.p.poll() is None and time.monotonic() < end:
            try:
                c, _ = srv.accept()
            except socket.timeout:
                continue
            accepted += 1
            c.close()
    finally:
        srv.close()
    assert w.wait(10) == 1, w.output
    assert accepted >= 2, (accepted, w.output)
    # Closed before or after the worker's first bytes arrived: a FIN
    # ("closed by peer"), or, those bytes unread, a reset.
    assert re.search(r"(closed|reset) by peer", w.output), w.output
    assert "gave up after 2 s" in w.output, w.output


def test_wrong_secret_is_not_retried(xylem, tmp_path, secret_file):
    """A manager that refuses the secret refuses it next time too: the
    worker, for all its default --connect-timeout, ends at once."""
    _, port = standing_manager(xylem, secret_file)
    wrong = tmp_path / "wrong"
    wrong.write_text(secrets.token_hex(32) + "\n")
    t0 = time.monotonic()
    w = xylem.worker(port, wrong, 1)
    assert w.wait(30) == 1, w.output
    assert time.monotonic() - t0 < 10
    assert "waiting for the manager" not in w.output, w.output
    assert re.search(r"error worker: the manager at 127\.0\.0\.1:\d+ "
                     r"refused this worker: refused by peer: bad secret",
                     w.output), w.output


def test_connect_timeout_bad_value(xylem, secret_file):
    for bad in ("-1", "soon", "1e12", ""):
        r = xylem.run("worker", "127.0.0.1:1", "--secret-file", secret_file,
                      "--connect-timeout", bad, timeout=10)
        assert r.returncode == 2, (bad, r.output)
        assert "--connect-timeout" in r.output, r.output


def test_drain_on_sigusr1(xylem, tmp_path, secret_file):
    """SIGUSR1 drains a worker (sbatch --signal sends it before a
    walltime): the task it runs finishes there, once, no new task goes to
    it, and it exits 0 when the manager, seeing it idle, tells it to
    stop. The task queued behind runs on the next worker."""
    out = tmp_path / "out"
    out.mkdir()
    flag = tmp_path / "started"
    wf = write_workflow(tmp_path / "wf.json", [
        task("slow", f"touch {flag}; sleep 2; echo slow > o",
             outputs=[(out / "slow", "o")]),
        task("next", "echo next > o", outputs=[(out / "next", "o")])])
    mgr, port = xylem.manager(wf, secret_file)
    w1 = xylem.worker(port, secret_file, 1)
    wait_for(flag.exists, 30, what="the slow task to start")
    w1.signal(signal.SIGUSR1)
    w1.wait_line(r"draining: no new tasks; 1 to finish", 10)
    assert w1.wait(30) == 0, w1.output
    assert "shut down by the manager" in w1.output, w1.output
    assert (out / "slow").read_text() == "slow\n", (mgr.output, w1.output)
    assert not (out / "next").exists()
    w2 = xylem.worker(port, secret_file, 1)
    assert mgr.wait(60) == 0, mgr.output
    assert (out / "next").read_text() == "next\n"
    assert w2.wait(30) == 0, w2.output
    # Ran once each: nothing was lost or run again.
    assert "lost" not in mgr.output and "again" not in mgr.output, \
        mgr.output


def test_drain_grace_returns_what_runs(xylem, tmp_path, secret_file):
    """With --drain-grace, a task still running when the grace ends goes
    back to the manager (without costing the task a retry) and runs to
    the end on another worker; the drained worker exits 0."""
    out = tmp_path / "out"
    out.mkdir()
    count = tmp_path / "starts"
    wf = write_workflow(tmp_path / "wf.json", [
        task("long", f"echo x >> {count}; sleep 3; echo done > o",
             outputs=[(out / "long", "o")], retries=0)])
    mgr, port = xylem.manager(wf, secret_file)
    w1 = xylem.worker(port, secret_file, 1, "--drain-grace", "0.5")
    wait_for(count.exists, 30, what="the task to start")
    w1.signal(signal.SIGUSR1)
    assert w1.wait(30) == 0, w1.output
    assert "drained: the grace ended" in w1.output, w1.output
    w2 = xylem.worker(port, secret_file, 1)
    assert mgr.wait(60) == 0, mgr.output
    assert (out / "long").read_text() == "done\n"
    assert count.read_text() == "x\nx\n"
    assert w2.wait(30) == 0, w2.output


def test_drain_grace_bad_value(xylem, secret_file):
    r = xylem.run("worker", "127.0.0.1:1", "--drain-grace", "soon",
                  "--secret-file", secret_file)
    assert r.returncode == 2
    assert "--drain-grace: 'soon' is not a number of seconds" in r.output
