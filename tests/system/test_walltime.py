"""Walltimes without a batch system (docs/scaling.md, "Walltimes"): local
workers started with --walltime say in HELLO how long they have left; a
task with a time limit goes only to a worker with enough of it, while a
short one may go to any; a worker drains itself a lead before its end,
finishing what it runs, and exits 0 with nothing lost; a task whose limit
no pool's walltime meets fails at once, the error naming the walltimes.
The Slurm side (the end read from the job) is in tests/slurm."""

import json
import os
import re
import time

from helpers import task, wait_for, write_workflow


def status(xylem, port, secret_file):
    r = xylem.run("status", f"127.0.0.1:{port}", "--json", "--secret-file",
                  secret_file)
    assert r.returncode == 0, r.output
    return json.loads(r.output)


def standing_manager(xylem, secret_file):
    p = xylem.start("manager", "--host", "127.0.0.1", "--port", 0,
                    "--secret-file", secret_file)
    m = p.wait_line(r"listening on port (\d+)", 30)
    return p, int(m.group(1))


def test_long_limit_goes_only_to_the_worker_with_time(xylem, tmp_path,
                                                      secret_file):
    """Worker A has 40 s left, B 600 s. A task limited to 100 s waits
    while only A is there, though A is idle; tasks limited to 5 s run on
    A meanwhile. Once B comes, the long task runs there. Status shows each
    worker's time left (and none for a worker without a walltime)."""
    out = tmp_path / "out"
    out.mkdir()
    cache_a, cache_b = tmp_path / "cache-a", tmp_path / "cache-b"
    wf = write_workflow(tmp_path / "wf.json", [
        task("long", "pwd > o", outputs=[(out / "long", "o")],
             time_limit=100),
        *[task(f"short{i}", "pwd > o", outputs=[(out / f"short{i}", "o")],
               time_limit=5) for i in range(3)]])
    mgr, port = xylem.manager(wf, secret_file)
    a = xylem.worker(port, secret_file, 1, "--name", "a", "--walltime",
                     "40", "--drain-lead", "5", "--cache", cache_a)
    for i in range(3):
        wait_for((out / f"short{i}").exists, 30, what=f"short{i}")
        assert str(cache_a) in (out / f"short{i}").read_text()
    # A is idle now and the long task still waits: it is not A's.
    time.sleep(0.5)
    assert not (out / "long").exists(), mgr.output
    st = status(xylem, port, secret_file)
    (wa,) = st["workers"]
    assert wa["name"] == "a" and wa["running"] == 0, wa
    assert 30 < wa["time_left"] <= 40, wa
    assert st["tasks"]["ready"] == 1, st
    b = xylem.worker(port, secret_file, 1, "--name", "b", "--walltime",
                     "600", "--cache", cache_b)
    assert mgr.wait(60) == 0, mgr.output
    assert str(cache_b) in (out / "long").read_text()
    assert a.wait(30) == 0, a.output
    assert b.wait(30) == 0, b.output
    # 40 s, or 39 if its HELLO came more than half a second late.
    assert re.search(r"time left for tasks: (39|40) s", a.output), \
        a.output


def test_short_limit_may_go_to_either(xylem, tmp_path, secret_file):
    """Two workers, 40 s and 600 s left, each one core; four tasks of
    2 s limited to 5 s, started together: both workers run some."""
    out = tmp_path / "out"
    out.mkdir()
    # Each task waits for the flag, set once both workers are there, so
    # that a worker slow to come (a loaded machine) still gets some.
    flag = tmp_path / "go"
    wf = write_workflow(tmp_path / "wf.json", [
        task(f"s{i}", f"while [ ! -e {flag} ]; do sleep 0.05; done;"
             " sleep 0.5; pwd > o", outputs=[(out / f"s{i}", "o")],
             time_limit=5) for i in range(4)])
    mgr, port = xylem.manager(wf, secret_file)
    a = xylem.worker(port, secret_file, 1, "--walltime", "40",
                     "--drain-lead", "5", "--cache", tmp_path / "ca")
    b = xylem.worker(port, secret_file, 1, "--walltime", "600",
                     "--cache", tmp_path / "cb")
    a.wait_line(r"connected to", 10)
    b.wait_line(r"connected to", 10)
    flag.touch()
    assert mgr.wait(60) == 0, mgr.output
    where = [(out / f"s{i}").read_text() for i in range(4)]
    assert any(str(tmp_path / "ca") in w for w in where), where
    assert any(str(tmp_path / "cb") in w for w in where), where
    assert a.wait(30) == 0 and b.wait(30) == 0


def test_status_time_left(xylem, tmp_path, secret_file):
    """`xylem status`: time_left in seconds for a worker with a
    walltime, null for one without; the table's LEFT column."""
    mgr, port = standing_manager(xylem, secret_file)
    xylem.worker(port, secret_file, 1, "--name", "timed", "--end-time",
                 str(int(time.time()) + 3600))
    xylem.worker(port, secret_file, 1, "--name", "open")
    wait_for(lambda: len(status(xylem, port, secret_file)["workers"]) == 2,
             30, what="two workers")
    by = {w["name"]: w for w in status(xylem, port, secret_file)["workers"]}
    assert 3590 < by["timed"]["time_left"] <= 3600, by
    assert by["open"]["time_left"] is None, by
    r = xylem.run("status", f"127.0.0.1:{port}", "--secret-file",
                  secret_file)
    assert r.returncode == 0, r.output
    assert re.search(r"LEFT", r.output), r.output
    assert re.search(r"^\s+timed\s.*\s(59m5\ds|1h00m)$", r.output, re.M), \
        r.output
    assert re.search(r"^\s+open\s.*\s-$", r.output, re.M), r.output


def test_worker_drains_itself_before_its_end(xylem, tmp_path, secret_file):
    """A worker with 8 s of walltime and a 5 s lead drains itself 3 s in,
    while its task (4 s, no limit) runs: the task finishes there, once;
    the task behind it is not given to it; the worker exits 0, told to
    stop by the manager. Another worker then runs the rest."""
    out = tmp_path / "out"
    out.mkdir()
    count = tmp_path / "starts"
    flag = tmp_path / "started"
    wf = write_workflow(tmp_path / "wf.json", [
        task("slow", f"echo x >> {count}; touch {flag}; sleep 4; "
             "echo slow > o", outputs=[(out / "slow", "o")], retries=0),
        task("next", "echo next > o", outputs=[(out / "next", "o")])])
    mgr, port = xylem.manager(wf, secret_file)
    t0 = time.monotonic()
    w1 = xylem.worker(port, secret_file, 1, "--walltime", "8",
                      "--drain-lead", "5")
    wait_for(flag.exists, 30, what="the slow task to start")
    w1.wait_line(r"draining: no new tasks; 1 to finish \(its walltime "
                 r"ends in 5 s\)", 10)
    drained_at = time.monotonic() - t0
    assert 2.5 <= drained_at <= 6, drained_at
    assert w1.wait(30) == 0, w1.output
    assert "shut down by the manager" in w1.output, w1.output
    assert (out / "slow").read_text() == "slow\n"
    assert count.read_text() == "x\n"
    assert not (out / "next").exists()
    w2 = xylem.worker(port, secret_file, 1)
    assert mgr.wait(60) == 0, mgr.output
    assert (out / "next").read_text() == "next\n"
    assert w2.wait(30) == 0, w2.output
    assert "lost" not in mgr.output and "again" not in mgr.output, \
        mgr.output


def test_worker_ended_before_reaching_the_manager(xylem, tmp_path,
                                                  secret_file):
    """A worker whose end is nearer than its lead, with no manager up,
    stops at once, exit 0, rather than waiting to connect."""
    r = xylem.run("worker", "127.0.0.1:1", "--secret-file", secret_file,
                  "--walltime", "2", "--drain-lead", "10", timeout=20)
    assert r.returncode == 0, r.output
    assert "drained before reaching the manager" in r.output, r.output


def test_walltime_options_checked(xylem, secret_file):
    for args, said in ((["--walltime", "soon"], "--walltime"),
                       (["--walltime", "0"], "--walltime: must be more"),
                       (["--end-time", "N/A"], "--end-time: 'N/A'"),
                       (["--drain-lead", "-1"], "--drain-lead"),
                       (["--walltime", "60", "--end-time", "2000000000"],
                        "give one")):
        r = xylem.run("worker", "127.0.0.1:1", "--secret-file",
                      secret_file, *args, timeout=10)
        assert r.returncode == 2, (args, r.output)
        assert said in r.output, (args, r.output)
    r = xylem.run("worker", "--help")
    assert r.returncode == 0
    for opt in ("--walltime S", "--end-time EPOCH", "--drain-lead S"):
        assert opt in r.output, r.output


def pool_run(xylem, wf, *pools, timeout=120):
    args = ["run", wf, "--quiet"]
    for p in pools:
        args += ["--pool", p]
    return xylem.run(*args, timeout=timeout,
                     env={**xylem.env, "XYLEM_LOG": "info"})


def test_limit_past_every_walltime_fails_at_once(xylem, tmp_path):
    """Pools of 60 s and 120 s walltimes: a task limited to 200 s fails
    at once as unschedulable, the error naming each pool's walltime; one
    limited to 20 s runs on a local worker started with --walltime 60 (so
    its pool's walltime reaches it), and one limited to 60 s causes a job
    of the 120 s pool, never of the 60 s one."""
    out = tmp_path / "out"
    wf = write_workflow(tmp_path / "wf.json", [
        task("ok", "echo ok > o", outputs=[(out / "ok", "o")],
             time_limit=20),
        # Its worker's command line: the shell's parent is the worker.
        task("mid", "tr '\\0' ' ' < /proc/$PPID/cmdline > o",
             outputs=[(out / "mid", "o")], time_limit=60),
        task("day", "true", time_limit=200)])
    t0 = time.monotonic()
    r = pool_run(xylem, wf, "name=short,cores=1,max=1,walltime=60,"
                 "priority=1", "name=long,cores=1,max=1,walltime=120")
    assert r.returncode == 1, r.output
    assert time.monotonic() - t0 < 30, r.output
    assert (out / "ok").read_text() == "ok\n"
    mid = (out / "mid").read_text()
    assert re.search(r"worker .* --name xy-\w+-long-\d+ .*--walltime 120",
                     mid), mid
    assert 'failed: task "day": unschedulable' in r.output, r.output
    assert ("no pool can run it: it asks for 1 cores, 0 GPUs, 0 MB "
            "memory, 200 s (time limit); the pools offer short: 1 cores, "
            "0 GPUs, 0 MB, walltime 60 s; long: 1 cores, 0 GPUs, 0 MB, "
            "walltime 120 s (a walltime must exceed a time limit by 30 s)"
            ) in r.output, r.output
    names = re.findall(r"pool (\S+): submitted job \d+ \((\S+)\)", r.output)
    pools = [p for p, _ in names]
    assert "long" in pools and "short" in pools, r.output
    # The short pool's worker, if it came before the long one took both
    # tasks (and its job was cancelled), was given its pool's walltime.
    if re.search(r"worker xy-\w+-short-\d+ ready", r.output):
        assert re.search(r"worker xy-\w+-short-\d+: (59|60) s left for"
                         r" tasks", r.output), r.output
