"""Temps reused at a restart (docs/durability.md, "Temps at a restart"):
A writes a temp; B reads it, and a file that a slow task S writes. The
manager of a run on a journal is killed with SIGKILL after A finished and
before B ran, then started again on the same journal. Each task appends a
line to a marks file outside its sandbox, so the tests count how often
each ran; A's temp holds a value made when A ran, so B's output says
which run of A it read."""

import os
import signal
import time

from helpers import kill_group, task, wait_for, write_workflow


def workflow(d):
    marks, t = d / "marks", d / "t"
    tasks = [
        task("a", f"v=A-$(date +%s%N); echo $v > t; echo \"A $v\" >> {marks}")
        | {"outputs": [{"path": str(t), "as": "t", "temp": True}]},
        task("s", f"echo start S >> {marks}; sleep 8; echo s > s;"
             f" echo end S >> {marks}", outputs=[(d / "s_out", "s")]),
        task("b", f"echo B >> {marks}; cat t s > out",
             inputs=[(t, "t"), (d / "s_out", "s")],
             outputs=[(d / "out", "out")]),
    ]
    return write_workflow(d / "wf.json", tasks), marks


def lines(marks):
    return marks.read_text().splitlines() if marks.exists() else []


def a_values(marks):
    return [x.split()[1] for x in lines(marks) if x.startswith("A ")]


def first_run_killed(xylem, tmp_path, secret_file, env):
    """The run on two cores of one external worker, killed once A has
    finished (and its record is written) while S runs. Returns the
    worker, the port and the marks file."""
    wf, marks = workflow(tmp_path)
    p = xylem.start("run", wf, "--journal", tmp_path / "journal",
                    "--workers", "0", "--port", 0, "--secret-file",
                    secret_file, env=env)
    port = int(p.wait_line(r"waiting for workers on port (\d+)", 30)
               .group(1))
    w = xylem.worker(port, secret_file, 2)
    wait_for(lambda: a_values(marks) and "start S" in lines(marks), 30,
             what="A finished and S started")
    # A's record goes out at the end of the loop turn that took its
    # report; S still has seconds to run.
    time.sleep(1)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    assert "B" not in lines(marks)
    return wf, w, port, marks


def env_of(xylem, wait):
    return {**xylem.env, "XYLEM_ADOPT_WAIT": str(wait), "XYLEM_LOG": "info"}


def test_temp_kept_by_its_worker_is_reused(xylem, tmp_path, secret_file):
    """The worker outlives the manager: after the restart A does not run
    again, S is taken back, B reads A's bytes from the worker's cache; a
    run again runs nothing."""
    env = env_of(xylem, 10)
    wf, w, port, marks = first_run_killed(xylem, tmp_path, secret_file,
                                          env)
    (v,) = a_values(marks)
    r = xylem.run("run", wf, "--journal", tmp_path / "journal",
                  "--workers", "0", "--port", port, "--secret-file",
                  secret_file, env=env, timeout=90)
    assert r.returncode == 0, r.output
    assert a_values(marks) == [v], (lines(marks), r.output)
    assert lines(marks).count("start S") == 1, lines(marks)
    assert lines(marks).count("B") == 1, lines(marks)
    assert (tmp_path / "out").read_text() == f"{v}\ns\n"
    assert "finished before" in r.output, r.output
    # Nothing made again: no remake of the temp.
    assert "made again" not in r.output, r.output
    r = xylem.run("run", wf, "--journal", tmp_path / "journal",
                  "--workers", "1", env=env, timeout=90)
    assert r.returncode == 0, r.output
    assert "(3 finished before: not run again)" in r.output, r.output
    assert a_values(marks) == [v] and lines(marks).count("B") == 1


def test_temp_whose_worker_is_gone_is_made_again(xylem, tmp_path,
                                                  secret_file):
    """The worker that held the temp is killed with the manager: after
    the wait for it, A runs again (lineage), and B reads what that run
    wrote."""
    env = env_of(xylem, 3)
    wf, w, port, marks = first_run_killed(xylem, tmp_path, secret_file,
                                          env)
    kill_group(w.p)
    w.p.wait(10)
    r = xylem.run("run", wf, "--journal", tmp_path / "journal",
                  "--workers", "1", "--cores-per-worker", "2", env=env,
                  timeout=90)
    assert r.returncode == 0, r.output
    values = a_values(marks)
    assert len(values) == 2, (lines(marks), r.output)
    assert lines(marks).count("B") == 1, lines(marks)
    assert (tmp_path / "out").read_text() == f"{values[1]}\ns\n"
