"""`xylem run --journal DIR` (docs/durability.md, "Restart"): run again
on its journal, a workflow runs only what changed; a run killed with
SIGKILL and started again does not run again what it had finished; a
torn journal tail costs only the task it recorded; a second manager on
the same journal is refused. Each task appends its name to a marks file
(outside the sandbox), so the tests count the runs of each."""

import os
import random
import signal
import time

from helpers import task, wait_for, write_workflow


def chains(tmp_path, n=2, length=3, sleep=0):
    """n independent chains of length tasks: chain i reads in_i and
    writes c_i_0 .. c_i_{length-1}, each task adding a line."""
    marks = tmp_path / "marks"
    tasks = []
    for i in range(n):
        src = tmp_path / f"in_{i}"
        if not src.exists():
            src.write_text(f"chain {i}\n")
        for k in range(length):
            out = tmp_path / f"c_{i}_{k}"
            name = f"t{i}_{k}"
            nap = f"sleep {sleep}; " if sleep else ""
            tasks.append(task(
                name, f"{nap}cat in > out; echo {name} >> out;"
                f" echo {name} >> {marks}",
                inputs=[(src, "in")], outputs=[(out, "out")]))
            src = out
    return write_workflow(tmp_path / "wf.json", tasks), marks


def runs(marks):
    """How many times each task ran."""
    counts = {}
    if marks.exists():
        for line in marks.read_text().split():
            counts[line] = counts.get(line, 0) + 1
    return counts


def run(xylem, wf, journal, *extra, timeout=60):
    return xylem.run("run", wf, "--journal", journal, "--workers", "2",
                     *extra, timeout=timeout)


def test_run_again_runs_nothing_then_only_what_changed(xylem, tmp_path):
    wf, marks = chains(tmp_path)
    j = tmp_path / "journal"
    r = run(xylem, wf, j)
    assert r.returncode == 0, r.output
    assert set(runs(marks).values()) == {1} and len(runs(marks)) == 6
    first = (tmp_path / "c_1_2").read_text()

    # Again: nothing runs, and it says so.
    r = run(xylem, wf, j)
    assert r.returncode == 0, r.output
    assert "6 succeeded, 0 failed (6 finished before: not run again)" in \
        r.output, r.output
    assert sum(runs(marks).values()) == 6
    assert (tmp_path / "c_1_2").read_text() == first

    # Chain 0's input changes: its three tasks run, chain 1's do not.
    (tmp_path / "in_0").write_text("chain zero, changed\n")
    r = run(xylem, wf, j)
    assert r.returncode == 0, r.output
    assert "(3 finished before: not run again)" in r.output, r.output
    assert runs(marks) == {"t0_0": 2, "t0_1": 2, "t0_2": 2,
                           "t1_0": 1, "t1_1": 1, "t1_2": 1}
    assert (tmp_path / "c_0_2").read_text().startswith("chain zero")


def test_changed_command_or_output_runs_again(xylem, tmp_path):
    wf, marks = chains(tmp_path, n=1, length=2)
    j = tmp_path / "journal"
    assert run(xylem, wf, j).returncode == 0
    # An output removed: its task runs again; the next one does not,
    # since what it reads comes out the same.
    (tmp_path / "c_0_0").unlink()
    r = run(xylem, wf, j)
    assert r.returncode == 0, r.output
    assert runs(marks) == {"t0_0": 2, "t0_1": 1}, r.output
    # An output edited (its size changes): its task runs again.
    with open(tmp_path / "c_0_1", "a") as f:
        f.write("edited\n")
    r = run(xylem, wf, j)
    assert runs(marks) == {"t0_0": 2, "t0_1": 2}, r.output
    assert "edited" not in (tmp_path / "c_0_1").read_text()
    # The last task's command changes: it alone runs again.
    text = (tmp_path / "wf.json").read_text()
    (tmp_path / "wf.json").write_text(
        text.replace("echo t0_1 >> out", "echo t0_1, again >> out"))
    r = run(xylem, wf, j)
    assert r.returncode == 0, r.output
    assert runs(marks) == {"t0_0": 2, "t0_1": 3}, r.output
    assert "t0_1, again" in (tmp_path / "c_0_1").read_text()


def test_killed_run_does_not_redo_finished_tasks(xylem, tmp_path):
    """A chain of six half-second tasks, the manager killed with SIGKILL
    once three have finished: started again, those three do not run
    again, and the outputs are right."""
    wf, marks = chains(tmp_path, n=1, length=6, sleep=0.5)
    j = tmp_path / "journal"
    p = xylem.start("run", wf, "--journal", j, "--workers", "1")
    wait_for(lambda: runs(marks).get("t0_2"), 30, what="three tasks")
    # The third task's record is written in the turn its output came
    # back, before the next task starts: wait for that one to start.
    wait_for(lambda: (tmp_path / "c_0_2").exists(), 10, what="c_0_2")
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    # A file where the journal's directory should be.
    (tmp_path / "file").write_text("x")
    r = run(xylem, wf, tmp_path / "file")
    assert r.returncode == 1, r.output
    assert "not a directory" in r.output.lower(), r.output
    r = run(xylem, wf, j)
    assert r.returncode == 0, r.output
    counts = runs(marks)
    assert [counts.get(f"t0_{k}") for k in range(3)] == [1, 1, 1], counts
    lines = (tmp_path / "c_0_5").read_text().split("\n")
    assert lines[:7] == ["chain 0"] + [f"t0_{k}" for k in range(6)]


def test_random_kills_never_redo_recorded_tasks(xylem, tmp_path):
    """Killed with SIGKILL at random moments, again and again, then let
    finish: every output is right, and no task whose output was in place
    (so recorded) before a kill runs after it. XYLEM_KILLS sets the
    number of kills (default 20; hundreds for a soak outside CI)."""
    rng = random.Random(int(os.environ.get("XYLEM_KILL_SEED", "13")))
    n_kills = int(os.environ.get("XYLEM_KILLS", "20"))
    chains_n, length = 4, max(24, n_kills)
    wf, marks = chains(tmp_path, n=chains_n, length=length, sleep=0.2)
    j = tmp_path / "journal"

    def finished():
        return {name for name in runs(marks)
                if (tmp_path / f"c_{name[1:]}").exists()}

    kills = 0
    while kills < n_kills:
        done_before, before = finished(), runs(marks)
        p = xylem.start("run", wf, "--journal", j, "--workers", "2")
        deadline = time.monotonic() + rng.uniform(0.05, 0.8)
        while time.monotonic() < deadline and p.p.poll() is None:
            time.sleep(0.01)
        if p.p.poll() is not None:
            assert p.wait(10) == 0, p.output
            break
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        kills += 1
        after = runs(marks)
        for name in done_before:
            assert after[name] == before[name], (name, kills, p.output)
    r = run(xylem, wf, j, timeout=120)
    assert r.returncode == 0, r.output
    assert kills >= min(n_kills, 10), kills
    for i in range(chains_n):
        lines = (tmp_path / f"c_{i}_{length - 1}").read_text().split("\n")
        assert lines[:length + 1] == \
            [f"chain {i}"] + [f"t{i}_{k}" for k in range(length)]


def test_torn_tail_costs_only_its_task(xylem, tmp_path):
    wf, marks = chains(tmp_path, n=1, length=3)
    j = tmp_path / "journal"
    assert run(xylem, wf, j).returncode == 0
    log = j / "log"
    # The last record (t0_2's) loses its last 5 bytes.
    os.truncate(log, log.stat().st_size - 5)
    r = run(xylem, wf, j)
    assert r.returncode == 0, r.output
    assert runs(marks) == {"t0_0": 1, "t0_1": 1, "t0_2": 2}, r.output
    assert "torn tail" in r.output, r.output


def test_second_manager_on_a_journal_is_refused(xylem, tmp_path):
    wf, marks = chains(tmp_path, n=1, length=1, sleep=5)
    j = tmp_path / "journal"
    p = xylem.start("run", wf, "--journal", j, "--workers", "1")
    wait_for(lambda: (j / "log").exists(), 10, what="the journal")
    r = run(xylem, wf, j)
    assert r.returncode == 1, r.output
    assert f"journal {j} is in use by another manager (pid {p.pid})" in \
        r.output, r.output
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)


def test_compaction_keeps_what_matters(xylem, tmp_path):
    """A record replaces the one before it for the same outputs, and the
    log, grown past its bound (small here), becomes a snapshot of the
    tasks it knows: the journal stays small, and a run again still runs
    nothing."""
    wf, marks = chains(tmp_path, n=1, length=2)
    j = tmp_path / "journal"
    env = {**xylem.env, "XYLEM_JOURNAL_COMPACT_BYTES": "300",
           "XYLEM_LOG": "info"}
    compacted = 0
    for k in range(8):
        (tmp_path / "in_0").write_text(f"version {k}\n")
        r = xylem.run("run", wf, "--journal", j, "--workers", "1",
                      timeout=60, env=env)
        assert r.returncode == 0, r.output
        compacted += r.output.count("compacted:")
    assert runs(marks) == {"t0_0": 8, "t0_1": 8}
    assert compacted >= 2, compacted
    assert (j / "snapshot").exists()
    # Two tasks known, whatever the runs before: about 2 records' worth.
    size = (j / "snapshot").stat().st_size + (j / "log").stat().st_size
    assert size < 1000, size
    r = xylem.run("run", wf, "--journal", j, "--workers", "1", timeout=60,
                  env=env)
    assert "(2 finished before: not run again)" in r.output, r.output
    assert runs(marks) == {"t0_0": 8, "t0_1": 8}


def test_crash_points_lose_no_recorded_task(xylem, tmp_path):
    """The manager killed at named crash points (docs/durability.md:
    before and after the Nth write of the journal, between its records
    and its commit mark, and in each step of a
    compaction, its bound made small), then run again to the end: every
    output is right, and a task recorded before the crash (its output in
    place) does not run again."""
    points = [("journal-before-write", n) for n in (2, 4)] + \
             [("journal-before-commit", n) for n in (2, 4)] + \
             [("journal-after-write", n) for n in (1, 3, 5)] + \
             [(p, 1) for p in ("compact-after-snapshot-write",
                               "compact-after-snapshot-rename",
                               "compact-after-log-rename")]
    for point, nth in points:
        d = tmp_path / f"{point}-{nth}"
        d.mkdir()
        # One task at a time, each napping before it writes: an output
        # in place then means its task's record was due before the
        # crash's write (two at once, one could finish while the other's
        # record was written, and be killed unrecorded with its output).
        wf, marks = chains(d, n=2, length=4, sleep=0.1)
        j = d / "journal"
        serial = ("--workers", "1", "--cores-per-worker", "1")
        env = {**xylem.env, "XYLEM_CRASH_POINT": point,
               "XYLEM_CRASH_AFTER": str(nth),
               "XYLEM_JOURNAL_COMPACT_BYTES": "200"}
        if point.startswith("compact"):
            # A log twice its table's size comes of records replaced:
            # a first run, then one with other inputs, which compacts.
            assert xylem.run("run", wf, "--journal", j, *serial,
                             timeout=60).returncode == 0
            for i in range(2):
                (d / f"in_{i}").write_text(f"chain {i}\n\n")
            marks.unlink()
        r = xylem.run("run", wf, "--journal", j, *serial,
                      timeout=60, env=env)
        assert r.returncode == -signal.SIGKILL, (point, nth, r.output)
        before = runs(marks)
        recorded = {n for n in before if (d / f"c_{n[1:]}").exists()}
        r = xylem.run("run", wf, "--journal", j, *serial,
                      timeout=60)
        assert r.returncode == 0, (point, nth, r.output)
        if point == "journal-before-commit":
            # The flush's records were written, its commit mark not:
            # cut, never replayed, and the journal goes on.
            assert "(after the last commit mark) is cut off" in r.output, \
                r.output
        after = runs(marks)
        # A task whose output is there ran before: if it was recorded
        # (the crash came after its record's write) it must not run
        # again; one killed between its output and its record may.
        ran_again = {n for n in recorded if after[n] > before[n]}
        if point == "journal-after-write" or point.startswith("compact"):
            assert not ran_again, (point, nth, ran_again)
        # And with its worker kept (test_adopt.py), what ran when the
        # manager died was taken back: every task ran once, wherever the
        # crash fell (a RUN record's write, a DONE's, a compaction).
        assert set(after.values()) == {1} and len(after) == 8, \
            (point, nth, after, r.output)
        for i in range(2):
            lines = (d / f"c_{i}_3").read_text().split("\n")
            lines = [x for x in lines if x]
            assert lines[:5] == [f"chain {i}"] + \
                [f"t{i}_{k}" for k in range(4)], (point, nth)


def test_reader_listed_before_its_writer(xylem, tmp_path):
    """A reader listed before the task that writes its input, with
    another input being hashed: run again on the journal, the writer is
    skipped and the run still ends (the output was queued for hashing
    twice, which lost the queue's other files and hung)."""
    marks = tmp_path / "marks"
    (tmp_path / "in0").write_text("zero\n")
    mid, out, cp = tmp_path / "mid", tmp_path / "out", tmp_path / "cp"
    wf = write_workflow(tmp_path / "wf.json", [
        task("t0", f"cp a b; echo t0 >> {marks}",
             inputs=[(tmp_path / "in0", "a")], outputs=[(cp, "b")]),
        task("reader", f"cat m > o; echo reader >> {marks}",
             inputs=[(mid, "m")], outputs=[(out, "o")]),
        task("writer", f"echo hi > m; echo writer >> {marks}",
             outputs=[(mid, "m")])])
    j = tmp_path / "journal"
    assert run(xylem, wf, j).returncode == 0
    r = run(xylem, wf, j, timeout=30)
    assert r.returncode == 0, r.output
    assert "(3 finished before: not run again)" in r.output, r.output
    assert runs(marks) == {"t0": 1, "reader": 1, "writer": 1}
