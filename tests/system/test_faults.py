"""Faults: a worker killed mid-task, a worker with the wrong secret, a
missing input, and a task over its memory. Each must end the way
docs/architecture.md says: lost work runs again elsewhere, intruders get
nothing, and failures are reported by blame without stopping the rest."""

import os
import secrets
import signal
import time

import pytest

from helpers import task, wait_for, write_workflow


@pytest.mark.slow
def test_worker_killed_mid_task(xylem, tmp_path, secret_file):
    marks = tmp_path / "marks"
    marks.mkdir()
    out = tmp_path / "out"
    # Each start leaves a mark named after the task and the shell's pid, so
    # a task that runs twice leaves two.
    tasks = [task(f"s{i}", f"touch {marks}/s{i}.$$; sleep 2; echo {i} > out",
                  outputs=[(out / f"{i}.txt", "out")]) for i in range(4)]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    mgr, port = xylem.manager(wf, secret_file)

    # w1 alone first, so the first task to start is certainly on w1.
    w1 = xylem.worker(port, secret_file, 1)
    wait_for(lambda: any(marks.iterdir()), 30, what="a task to start on w1")
    xylem.worker(port, secret_file, 1)
    os.kill(w1.pid, signal.SIGKILL)
    assert w1.wait(10) == -signal.SIGKILL

    rc = mgr.wait(120)
    assert rc == 0, mgr.output
    for i in range(4):
        assert (out / f"{i}.txt").read_text() == f"{i}\n"
    started = [m.name.split(".")[0] for m in marks.iterdir()]
    rerun = [t for t in set(started) if started.count(t) > 1]
    assert rerun, f"the killed worker's task did not run again: {started}"
    assert "4 succeeded, 0 failed" in mgr.output


def test_worker_with_wrong_secret(xylem, tmp_path, secret_file):
    wrong = tmp_path / "wrong-secret"
    wrong.write_text(secrets.token_hex(32) + "\n")
    out = tmp_path / "out"
    tasks = [task(f"t{i}", f"echo {i} > out", outputs=[(out / f"{i}", "out")])
             for i in range(3)]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    mgr, port = xylem.manager(wf, secret_file)

    bad = xylem.worker(port, wrong, 1)
    rc = bad.wait(30)
    assert rc != 0, bad.output
    mgr.wait_line(r"refused|bad secret", 10)
    time.sleep(0.5)
    assert not out.exists() or not any(out.iterdir()), \
        "tasks ran although only a worker with the wrong secret came"

    xylem.worker(port, secret_file, 1)
    assert mgr.wait(60) == 0, mgr.output
    assert sorted(p.name for p in out.iterdir()) == ["0", "1", "2"]


def test_missing_input(xylem, tmp_path):
    out = tmp_path / "out"
    tasks = [
        task("needs", "cat in > out",
             inputs=[(tmp_path / "absent.txt", "in")],
             outputs=[(out / "needs", "out")]),
        task("after", "cat in > out", inputs=[(out / "needs", "in")],
             outputs=[(out / "after", "out")]),
        task("ok1", "echo one > out", outputs=[(out / "ok1", "out")]),
        task("ok2", "echo two > out", outputs=[(out / "ok2", "out")]),
    ]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    r = xylem.run("run", wf, "--workers", "2", timeout=60)
    assert r.returncode == 1, r.output
    assert 'task "needs": input missing' in r.output, r.output
    # Its dependent cannot run either, and says why.
    assert 'task "after": input missing' in r.output, r.output
    assert (out / "ok1").read_text() == "one\n"
    assert (out / "ok2").read_text() == "two\n"
    assert "2 succeeded, 2 failed" in r.output


@pytest.mark.slow
def test_task_over_memory(xylem, tmp_path):
    hog = ("python3 -c \"b = b'x' * (300 << 20); import time; "
           "time.sleep(5)\"")
    out = tmp_path / "out"
    tasks = [
        task("hog", hog, resources={"memory": 50}),
        task("fine", "echo fine > out", outputs=[(out / "fine", "out")],
             resources={"memory": 50}),
    ]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    r = xylem.run("run", wf, "--workers", "1", timeout=90)
    assert r.returncode == 1, r.output
    assert 'task "hog": resources exhausted' in r.output, r.output
    assert (out / "fine").read_text() == "fine\n"
