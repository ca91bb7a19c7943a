"""Workers outlive their manager (docs/durability.md): the manager of a
run on a journal killed with SIGKILL while tasks run, then started again
on the same journal: the workers kept their tasks and caches, came back,
and the new manager took the tasks back instead of running them again.
Each task appends "start NAME" and "end NAME" to a marks file outside
its sandbox, so the tests count how often each ran."""

import os
import random
import re
import signal
import time

from helpers import task, wait_for, write_workflow

FAST = {"XYLEM_ADOPT_WAIT": "5"}


def sleepers(d, n, seconds, inputs=()):
    """n independent tasks of `seconds` each, writing out_i."""
    marks = d / "marks"
    tasks = [task(f"s{i}", f"echo start s{i} >> {marks}; sleep {seconds};"
                  f" echo s{i} > out; cat in* >> out 2>/dev/null;"
                  f" echo end s{i} >> {marks}",
                  inputs=inputs, outputs=[(d / f"out_{i}", "out")])
             for i in range(n)]
    return write_workflow(d / "wf.json", tasks), marks


def external(xylem, wf, secret_file, env, *extra):
    """`xylem run WF --workers 0` waiting for external workers on a free
    port: (the process, its port)."""
    p = xylem.start("run", wf, *extra, "--workers", "0", "--port", 0,
                    "--secret-file", secret_file, env=env)
    m = p.wait_line(r"waiting for workers on port (\d+)", 30)
    return p, int(m.group(1))


def counts(marks):
    c = {}
    if marks.exists():
        for line in marks.read_text().splitlines():
            c[line] = c.get(line, 0) + 1
    return c


def env_with(xylem, **extra):
    return {**xylem.env, **FAST, "XYLEM_LOG": "info", **extra}


def test_running_tasks_are_taken_back(xylem, tmp_path):
    """Four 3-second tasks on two local workers; the run killed once all
    four started; run again: none starts again, each ends once, and the
    run says it took them back."""
    wf, marks = sleepers(tmp_path, 4, 3)
    j = tmp_path / "journal"
    p = xylem.start("run", wf, "--journal", j, "--workers", "2",
                    "--cores-per-worker", "2", env=env_with(xylem))
    wait_for(lambda: sum(k.startswith("start") for k in counts(marks)) == 4,
             30, what="four tasks started")
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    r = xylem.run("run", wf, "--journal", j, "--workers", "2",
                  "--cores-per-worker", "2", env=env_with(xylem),
                  timeout=60)
    assert r.returncode == 0, r.output
    assert "(4 taken back from workers that kept them)" in r.output, \
        r.output
    c = counts(marks)
    assert all(c.get(f"start s{i}") == 1 and c.get(f"end s{i}") == 1
               for i in range(4)), c
    for i in range(4):
        assert (tmp_path / f"out_{i}").read_text() == f"s{i}\n"


def test_tasks_that_finished_while_away(xylem, tmp_path, secret_file):
    """External workers keep running while the manager is dead; their
    tasks finish then. The manager started again takes their results
    (outputs brought back from the workers), runs nothing again, and
    sends no file the workers still hold: the 2 MB input each task read
    stays in their caches."""
    big = tmp_path / "in_big"
    big.write_bytes(os.urandom(2 << 20))
    wf, marks = sleepers(tmp_path, 4, 1, inputs=[(big, "in_big")])
    j = tmp_path / "journal"
    env = env_with(xylem)
    p, port = external(xylem, wf, secret_file, env, "--journal", j)
    for _ in range(2):
        xylem.worker(port, secret_file, 2)
    wait_for(lambda: sum(k.startswith("start") for k in counts(marks)) == 4,
             30, what="four tasks started")
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    wait_for(lambda: sum(k.startswith("end") for k in counts(marks)) == 4,
             30, what="four tasks ended without a manager")
    r = xylem.run("run", wf, "--journal", j, "--workers", "0", "--port",
                  port, "--secret-file", secret_file, env=env, timeout=60)
    assert r.returncode == 0, r.output
    assert "(4 taken back from workers that kept them)" in r.output, \
        r.output
    assert all(v == 1 for v in counts(marks).values()), counts(marks)
    data = big.read_bytes()
    for i in range(4):
        assert (tmp_path / f"out_{i}").read_bytes() == \
            f"s{i}\n".encode() + data
    sent = re.search(r"file bodies: (\d+) bytes sent", r.output)
    assert sent and int(sent.group(1)) < len(data), r.output


def test_worker_whose_lease_ran_out(xylem, tmp_path, secret_file):
    """A worker with a 2-second lease loses its manager: it kills its
    task and exits after the lease. The manager started later waits for
    it (a short wait here), then runs the task again; the output is
    right."""
    wf, marks = sleepers(tmp_path, 1, 6)
    j = tmp_path / "journal"
    env = env_with(xylem, XYLEM_ADOPT_WAIT="3")
    p, port = external(xylem, wf, secret_file, env, "--journal", j)
    w = xylem.worker(port, secret_file, 1, "--lease", "2")
    wait_for(lambda: counts(marks).get("start s0"), 30, what="the task")
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    assert w.wait(20) == 1
    assert "did not come back in the lease's 2 s" in w.output, w.output
    w2 = xylem.start("run", wf, "--journal", j, "--workers", "0", "--port",
                     port, "--secret-file", secret_file, env=env)
    w2.wait_line(r"waiting for workers", 30)
    xylem.worker(port, secret_file, 1)
    assert w2.wait(60) == 0, w2.output
    assert "1 run again (1 of them waited for a worker that did not " \
        "come back)" in w2.output, w2.output
    assert counts(marks) == {"start s0": 2, "end s0": 1}
    assert (tmp_path / "out_0").read_text() == "s0\n"


def test_a_manager_that_does_not_know_them_cancels_them(
        xylem, tmp_path, secret_file):
    """A worker comes back to a manager on another journal: the tasks it
    held are not that manager's, and are killed (their end never comes);
    the new run's own task runs."""
    wf, marks = sleepers(tmp_path, 1, 8)
    env = env_with(xylem)
    p, port = external(xylem, wf, secret_file, env, "--journal",
                       tmp_path / "j1")
    w = xylem.worker(port, secret_file, 1, "--lease", "60")
    wait_for(lambda: counts(marks).get("start s0"), 30, what="the task")
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    other = tmp_path / "other"
    other.mkdir()
    wf2, marks2 = sleepers(other, 1, 0)
    r = xylem.run("run", wf2, "--journal", tmp_path / "j2", "--workers",
                  "0", "--port", port, "--secret-file", secret_file,
                  env=env, timeout=60)
    assert r.returncode == 0, r.output
    assert counts(marks2) == {"start s0": 1, "end s0": 1}
    time.sleep(9)  # past the first task's end, had it lived
    assert counts(marks) == {"start s0": 1}, counts(marks)
    assert "came back holding 1 tasks, 1 of them not wanted (cancelled)" \
        in r.output, \
        r.output
    w.kill()


def test_random_kills_run_each_task_once(xylem, tmp_path, secret_file):
    """A 40-task workflow (chains and a fan-in) on two external workers,
    its manager killed with SIGKILL at random moments and started again
    each time on the same journal, until it finishes; then again with new
    inputs, round after round until XYLEM_ADOPT_KILLS kills (default 50).
    In every round every task ran exactly once, however the kills fell
    (running, finishing, its output on its way back), and every output is
    right."""
    kills = int(os.environ.get("XYLEM_ADOPT_KILLS", "50"))
    rng = random.Random(int(os.environ.get("XYLEM_SEED", "7")))
    marks = tmp_path / "marks"
    tasks = []
    for c in range(8):
        src = tmp_path / f"in_{c}"
        for k in range(4):
            out = tmp_path / f"c_{c}_{k}"
            name = f"t{c}_{k}"
            tasks.append(task(
                name, f"sleep 0.{rng.randint(1, 4)}; cat in > out;"
                f" echo {name} >> out; echo {name} >> {marks}",
                inputs=[(src, "in")], outputs=[(out, "out")]))
            src = out
    for f in range(8):
        tasks.append(task(
            f"f{f}", f"cat c_* > out; echo f{f} >> {marks}",
            inputs=[(tmp_path / f"c_{c}_3", f"c_{c}") for c in range(8)],
            outputs=[(tmp_path / f"fan_{f}", "out")]))
    wf = write_workflow(tmp_path / "wf.json", tasks)
    j = tmp_path / "journal"
    env = {**xylem.env, **FAST}
    port = [0]

    def start():
        return xylem.start("run", wf, "--journal", j, "--workers", "0",
                           "--port", port[0], "--secret-file",
                           secret_file, env=env)

    killed, rounds = 0, 0
    while killed < kills:
        rounds += 1
        for c in range(8):
            (tmp_path / f"in_{c}").write_text(f"chain {c} round {rounds}\n")
        if marks.exists():
            marks.unlink()
        p = start()
        # A run that ends stops its workers: each round brings two.
        port[0] = int(p.wait_line(r"waiting for workers on port (\d+)",
                                  30).group(1))
        for _ in range(2):
            xylem.worker(port[0], secret_file, 2, "--lease", "120")
        while killed < kills:
            time.sleep(rng.uniform(0.1, 0.8))
            if p.p.poll() is not None:
                break
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)
            killed += 1
            p = start()
        rc = p.wait(120)
        assert rc == 0, p.output
        ran = marks.read_text().split()
        twice = {n for n in ran if ran.count(n) > 1}
        assert not twice, (rounds, killed, twice)
        assert len(ran) == 40, (rounds, sorted(ran))
        for c in range(8):
            lines = (tmp_path / f"c_{c}_3").read_text().split("\n")
            assert lines[:5] == [f"chain {c} round {rounds}"] + \
                [f"t{c}_{k}" for k in range(4)], (rounds, lines)
        fan = (tmp_path / "fan_0").read_text()
        assert all(f"t{c}_3" in fan for c in range(8))


def test_lease_without_a_journal(xylem, tmp_path, secret_file):
    """A worker given a lease whose manager keeps no journal: what ran
    has no key, so it is cancelled when the manager goes (no manager
    could take it back); the next manager's tasks, whose ids are the
    same, run and write their own outputs."""
    wf, marks = sleepers(tmp_path, 3, 4)
    p, port = external(xylem, wf, secret_file, env_with(xylem))
    xylem.worker(port, secret_file, 3, "--lease", "60")
    wait_for(lambda: sum(k.startswith("start") for k in counts(marks)) == 3,
             30, what="three tasks started")
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    other = tmp_path / "other"
    other.mkdir()
    tasks = [task(f"n{i}", f"echo new{i} > out", outputs=[
        (other / f"new_{i}", "out")]) for i in range(3)]
    wf2 = write_workflow(other / "wf.json", tasks)
    r = xylem.run("run", wf2, "--workers", "0", "--port", port,
                  "--secret-file", secret_file, env=env_with(xylem),
                  timeout=60)
    assert r.returncode == 0, r.output
    for i in range(3):
        assert (other / f"new_{i}").read_text() == f"new{i}\n"
    time.sleep(4)  # past the first tasks' end, had they lived
    assert not any(k.startswith("end") for k in counts(marks)), \
        counts(marks)


def test_a_retry_is_taken_back_not_its_failed_attempt(xylem, tmp_path):
    """A task fails once and is retried; the manager is killed while the
    retry runs. The worker still holds the first attempt's report (a
    failure) beside the retry: the manager started again takes the
    running retry, not the stale failure, and the task runs twice in
    all (its failure and its retry), not three times."""
    marks = tmp_path / "marks"
    flag = tmp_path / "failed_once"
    cmd = (f"if [ -e {flag} ]; then echo start >> {marks}; sleep 3;"
           f" echo ok > out; echo end >> {marks};"
           f" else touch {flag}; echo failed >> {marks}; exit 1; fi")
    wf = write_workflow(tmp_path / "wf.json", [task(
        "r", cmd, outputs=[(tmp_path / "out", "out")], retries=1)])
    j = tmp_path / "journal"
    env = env_with(xylem)
    p = xylem.start("run", wf, "--journal", j, "--workers", "1",
                    "--cores-per-worker", "1", env=env)
    wait_for(lambda: counts(marks).get("start"), 30, what="the retry")
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    r = xylem.run("run", wf, "--journal", j, "--workers", "1",
                  "--cores-per-worker", "1", env=env, timeout=60)
    assert r.returncode == 0, r.output
    assert counts(marks) == {"failed": 1, "start": 1, "end": 1}, \
        (counts(marks), r.output)
    assert (tmp_path / "out").read_text() == "ok\n"


def test_a_task_with_a_temp_leaves_no_wait(xylem, tmp_path):
    """A task that writes a temp is not recorded (a temp lives on
    workers only): it must not stay 'running' in the journal either, or
    each later run on the journal waits for it in vain."""
    mid, out = tmp_path / "mid", tmp_path / "out"
    wf = write_workflow(tmp_path / "wf.json", [
        task("a", "echo hi > t", outputs=[]) | {"outputs": [
            {"path": str(mid), "as": "t", "temp": True}]},
        task("b", "cat t > out", inputs=[(mid, "t")],
             outputs=[(out, "out")])])
    j = tmp_path / "journal"
    env = {**xylem.env, "XYLEM_ADOPT_WAIT": "30"}
    for _ in range(2):
        start = time.monotonic()
        r = xylem.run("run", wf, "--journal", j, "--workers", "1",
                      env=env, timeout=60)
        assert r.returncode == 0, r.output
        assert time.monotonic() - start < 20, r.output
    assert out.read_text() == "hi\n"
