"""Temps on loopback (docs/dataplane.md, "Temps and lineage"): a chain
A -> temp -> B whose temp never reaches the manager; the temp's only
holder killed after A ended, so that A runs again (internally) before B;
a rerun that fails, so that B fails with "input missing" and says why;
and a temp evicted from a small cache, which counts as lost. The same
loss across namespaces, mid-transfer, is in tests/netns/test_temps.py; the
C API's cases are in tests/unit/test_lineage.c."""

import json
import os
import signal
import sqlite3
import subprocess

from helpers import task, wait_for, write_workflow


def temp_out(path, as_):
    return {"path": str(path), "as": as_, "temp": True}


def events(db, tag):
    try:
        with sqlite3.connect(db) as con:
            return [r[0] for r in con.execute(
                "SELECT event FROM task_events WHERE tag = ?"
                " ORDER BY time", (tag,))]
    except sqlite3.Error:
        return []


def workers_ready(xylem, port, secret_file):
    r = subprocess.run([xylem.bin, "status", f"127.0.0.1:{port}",
                        "--secret-file", secret_file, "--json"],
                       capture_output=True, text=True, timeout=30)
    return sum(1 for w in json.loads(r.stdout)["workers"]
               if w["schedulable"])


def test_temp_chain(xylem, tmp_path):
    mid, out = tmp_path / "mid", tmp_path / "out"
    tasks = [
        task("b", "tr a-z A-Z < in > out", inputs=[(mid, "in")],
             outputs=[(out, "out")]),
        {"id": "a", "command": "echo hello > out",
         "outputs": [temp_out(mid, "out")]},
    ]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    r = xylem.run("run", wf, "--workers", "2", timeout=60)
    assert r.returncode == 0, r.output
    assert out.read_text() == "HELLO\n"
    assert not mid.exists(), "a temp was brought back unasked"
    assert "2 succeeded, 0 failed" in r.output, r.output


def lost_holder_run(xylem, tmp_path, secret_file, writer):
    """A (1 core) writes a temp on w1; once A is done, w1 is killed and
    w2 (2 cores) comes; B (2 cores) needs the temp. Returns (manager
    exit status, its output, history db)."""
    mid, out = tmp_path / "mid", tmp_path / "out"
    tasks = [
        {"id": "a", "command": writer, "outputs": [temp_out(mid, "out")]},
        task("b", "cat in > out", inputs=[(mid, "in")],
             outputs=[(out, "out")], resources={"cores": 2}),
    ]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    db = tmp_path / "run.db"
    mgr, port = xylem.manager(wf, secret_file, "--history", db)
    w1 = xylem.worker(port, secret_file, 1)
    wait_for(lambda: "done" in events(db, "a"), 30, what="a to end")
    os.kill(w1.pid, signal.SIGKILL)
    assert w1.wait(10) == -signal.SIGKILL
    mgr.wait_line(r"disconnected", 10)
    xylem.worker(port, secret_file, 2)
    return mgr.wait(60), mgr.output, db


def test_temp_holder_lost_writer_runs_again(xylem, tmp_path, secret_file):
    marks = tmp_path / "marks"
    rc, output, db = lost_holder_run(
        xylem, tmp_path, secret_file,
        f"echo x >> {marks}; echo made > out")
    assert rc == 0, output
    assert (tmp_path / "out").read_text() == "made\n"
    assert marks.read_text() == "x\nx\n", "a did not run exactly twice"
    assert "remade" in events(db, "a"), events(db, "a")
    assert "lost its last copy" in output, output
    # The rerun is internal: the summary counts the two tasks given.
    assert "2 succeeded, 0 failed" in output, output


def test_temp_rerun_fails(xylem, tmp_path, secret_file):
    once = tmp_path / "once"
    rc, output, _ = lost_holder_run(
        xylem, tmp_path, secret_file,
        f"test ! -e {once} && touch {once} && echo made > out")
    assert rc == 1, output
    assert 'task "b": input missing' in output, output
    assert "was lost and could not be made again" in output, output
    assert "1 succeeded, 1 failed" in output, output


def test_evicted_temp_is_made_again(xylem, tmp_path, secret_file):
    """One worker with a 2 MiB cache: A's 1.5 MiB temp is evicted when C
    makes another; B, which reads A's temp after C, has A run again."""
    marks, size = tmp_path / "marks", 3 << 19
    big = f"head -c {size} /dev/zero | tr '\\0' %s > t"
    tasks = [
        {"id": "a", "command": f"echo x >> {marks}; {big % 'a'}; echo a > ok",
         "outputs": [temp_out(tmp_path / "t1", "t"),
                     {"path": str(tmp_path / "ok_a"), "as": "ok"}]},
        {"id": "c", "command": f"{big % 'c'}; echo c > ok",
         "inputs": [{"path": str(tmp_path / "ok_a"), "as": "prev"}],
         "outputs": [temp_out(tmp_path / "t2", "t"),
                     {"path": str(tmp_path / "ok_c"), "as": "ok"}]},
        task("b", "wc -c < t > out",
             inputs=[(tmp_path / "t1", "t"), (tmp_path / "ok_c", "prev")],
             outputs=[(tmp_path / "out", "out")]),
    ]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    mgr, port = xylem.manager(wf, secret_file)
    w = xylem.worker(port, secret_file, 1, "--disk", "2")
    assert mgr.wait(30) == 0, mgr.output + w.output
    assert (tmp_path / "out").read_text().strip() == str(size)
    assert marks.read_text() == "x\nx\n", mgr.output + w.output
    assert "temp-1 lost its last copy" in mgr.output, mgr.output
    w.wait_line(r"evicted", 10)
    assert "3 succeeded, 0 failed" in mgr.output, mgr.output


def test_draining_holder_hands_its_temps_off(xylem, tmp_path, secret_file):
    """A (1 core) writes 20 temps on w1 (more than a source serves at
    once); w2 (1 core) comes; w1 is drained (SIGUSR1), and before it
    stops, each temp's last copy goes to w2. B (2 cores) then runs on w3
    with the temps from w2: A ran once."""
    n = 20
    out, marks = tmp_path / "out", tmp_path / "marks"
    writes = "; ".join(f"echo made{i} > t{i}" for i in range(n))
    tasks = [
        {"id": "a", "command": f"echo x >> {marks}; {writes}",
         "outputs": [temp_out(tmp_path / f"mid{i}", f"t{i}")
                     for i in range(n)]},
        task("b", "cat " + " ".join(f"t{i}" for i in range(n)) + " > out",
             inputs=[(tmp_path / f"mid{i}", f"t{i}") for i in range(n)],
             outputs=[(out, "out")], resources={"cores": 2}),
    ]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    db = tmp_path / "run.db"
    mgr, port = xylem.manager(wf, secret_file, "--history", db)
    w1 = xylem.worker(port, secret_file, 1)
    wait_for(lambda: "done" in events(db, "a"), 30, what="a to end")
    w2 = xylem.worker(port, secret_file, 1)
    # The manager has w2 (its HELLO may come after w1's DRAIN else).
    wait_for(lambda: workers_ready(xylem, port, secret_file) == 2, 10,
             what="w2 to be ready")
    w1.signal(signal.SIGUSR1)
    assert w1.wait(30) == 0, w1.output
    xylem.worker(port, secret_file, 2)
    assert mgr.wait(60) == 0, mgr.output
    assert out.read_text() == "".join(f"made{i}\n" for i in range(n))
    assert marks.read_text() == "x\n", "a ran again: " + mgr.output
    assert "lost its last copy" not in mgr.output, mgr.output
    w2.signal(signal.SIGTERM)
