"""`xylem run WORKFLOW --manager HOST:PORT` (docs/cli.md, "xylem run
against a standing manager"): a workflow's tasks submitted to a standing
`xylem manager` as its client, in dependency order, outputs fetched to
their paths, a temp passed through the client's side, failed tasks run
again up to their retries, and what SUBMIT cannot carry refused before
anything runs."""

import json
import signal

from helpers import SLOW, wait_for
from test_manager_journal import TIMEOUT, Standing, free_port


def write_wf(path, tasks):
    path.write_text(json.dumps({"name": "remote", "tasks": tasks}))
    return path


def run(xylem, mgr, wf, *extra, cwd=None):
    return xylem.run("run", wf, "--manager", f"127.0.0.1:{mgr.port}",
                     "--secret-file", mgr.secret_file, *extra, cwd=cwd)


def test_a_workflow_runs_on_a_standing_manager(xylem, tmp_path, secret_file):
    """A three-task workflow (a temp between two of them, one task that
    fails once and has a retry): every output lands at its path with the
    right bytes, each task ran as often as it should, the temp is nowhere
    in the workflow's directory, and the manager's worker ran it all."""
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    marks = tmp_path / "marks"
    (tmp_path / "in.txt").write_text("hello\n")
    flaky = (f"echo c >> {marks}; [ $(grep -c c {marks}) -ge 2 ] || exit 5;"
             " wc -c < in > out")
    wf = write_wf(tmp_path / "wf.json", [
        {"id": "a", "command": f"echo a >> {marks}; tr a-z A-Z < in > out",
         "inputs": [{"path": "in.txt", "as": "in"}],
         "outputs": [{"path": "mid", "as": "out", "temp": True}]},
        {"id": "b", "command": f"echo b >> {marks}; cat in in > out",
         "inputs": [{"path": "mid", "as": "in"}],
         "outputs": [{"path": "res/b.txt", "as": "out"}]},
        {"id": "c", "command": flaky, "retries": 1,
         "inputs": [{"path": "in.txt", "as": "in"}],
         "outputs": [{"path": "res/c.txt", "as": "out"}]}])
    r = run(xylem, mgr, wf, "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.output + mgr.p.output
    assert (tmp_path / "res/b.txt").read_text() == "HELLO\nHELLO\n"
    assert (tmp_path / "res/c.txt").read_text().strip() == "6"
    assert sorted(marks.read_text().split()) == ["a", "b", "c", "c"]
    assert not (tmp_path / "mid").exists()
    assert 'task "c" failed (exited with status 5); running it again' \
        ' (run 2 of 2)' in r.output, r.output
    assert "succeeded" not in r.output, r.output  # --quiet
    # A second run is a second run: the standing manager has no workflow
    # of this client's to remember (--journal is the local run's).
    r = run(xylem, mgr, wf, cwd=tmp_path)
    assert r.returncode == 0, r.output
    assert "3 tasks: 3 succeeded, 0 failed" in r.output, r.output


def test_a_failed_task_stops_what_reads_its_output(xylem, tmp_path,
                                                   secret_file):
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    wf = write_wf(tmp_path / "wf.json", [
        {"id": "bad", "command": "echo oops; exit 3",
         "outputs": [{"path": "x", "as": "out"}]},
        {"id": "after", "command": "cat in > out",
         "inputs": [{"path": "x", "as": "in"}],
         "outputs": [{"path": "y", "as": "out"}]},
        {"id": "other", "command": "echo fine > out",
         "outputs": [{"path": "z", "as": "out"}]}])
    r = run(xylem, mgr, wf, cwd=tmp_path)
    assert r.returncode == 1, r.output
    assert 'failed: task "bad"' in r.output and "oops" in r.output, r.output
    assert 'task "after" not run: its input from "bad" was not made' \
        in r.output, r.output
    assert (tmp_path / "z").read_text() == "fine\n"
    assert not (tmp_path / "y").exists()


def test_what_manager_mode_cannot_take_is_refused(xylem, tmp_path,
                                                  secret_file):
    """Local-run options, and inputs SUBMIT does not carry yet (an
    archive to unpack, a URL, a task array), are refused with the reason
    and exit 2, before anything is submitted; so is a missing secret."""
    (tmp_path / "a.tar").write_bytes(b"")
    plain = write_wf(tmp_path / "plain.json", [
        {"id": "t", "command": "true"}])
    cases = [
        (plain, ["--workers", "2"], "--workers is for a run with its own"
         " manager"),
        (plain, ["--journal", str(tmp_path / "j")], "--journal is for a"),
        (write_wf(tmp_path / "unpack.json", [
            {"id": "u", "command": "ls in",
             "inputs": [{"path": "a.tar", "as": "in", "unpack": True}]}]),
         [], 'task "u" has an archive to unpack'),
        (write_wf(tmp_path / "url.json", [
            {"id": "w", "command": "cat in",
             "inputs": [{"url": "http://127.0.0.1:9/x", "as": "in"}]}]),
         [], 'task "w" has a URL input'),
        (write_wf(tmp_path / "array.json", [
            {"id": "arr", "command": "true", "array": {"range": 3}}]),
         [], 'task "arr" is a task array'),
    ]
    for wf, extra, said in cases:
        r = xylem.run("run", wf, "--manager", "127.0.0.1:9",
                      "--secret-file", secret_file, *extra, cwd=tmp_path)
        assert r.returncode == 2 and said in r.output, (wf, r.output)
    env = dict(xylem.env)
    env.pop("XYLEM_SECRET", None)
    env.pop("XYLEM_SECRET_FILE", None)
    r = xylem.run("run", plain, "--manager", "127.0.0.1:9", env=env)
    assert r.returncode == 2 and "needs the manager's secret" in r.output
    r = xylem.run("run", plain, "--tls-ca", "x", env=env)
    assert r.returncode == 2 and "--tls-ca goes with --manager" in r.output


def test_a_killed_manager_loses_nothing_and_runs_nothing_twice(
        xylem, tmp_path, secret_file):
    """The manager (with a journal; its worker a process of its own that
    outlives it) is killed with SIGKILL while tasks run and others wait
    on them, then started again on its journal and port: `xylem run`
    reaches it again, submits what was out under the same keys, and
    every task ran exactly once, its outputs right."""
    port, journal = free_port(), tmp_path / "journal"
    marks = tmp_path / "marks"

    def manager():
        p = xylem.start("manager", "--workers", 0, "--port", port, "--host",
                        "127.0.0.1", "--secret-file", secret_file,
                        "--journal", journal)
        p.wait_line(r"listening on port", 30)
        return p
    mgr = manager()
    worker = xylem.start("worker", f"127.0.0.1:{port}", "--secret-file",
                         secret_file, "--cores", 4)
    mgr.wait_line(r"worker \S+ ready", 30)
    tasks = [{"id": f"t{i}",
              "command": f"echo t{i} >> {marks}; sleep {2 * SLOW};"
                         f" echo {i} > out",
              "outputs": [{"path": str(tmp_path / f"out/t{i}"), "as": "out"}]}
             for i in range(3)]
    tasks.append({"id": "sum", "command": f"echo sum >> {marks};"
                  " cat a b > out",
                  "inputs": [{"path": str(tmp_path / "out/t0"), "as": "a"},
                             {"path": str(tmp_path / "out/t1"), "as": "b"}],
                  "outputs": [{"path": str(tmp_path / "out/sum"),
                               "as": "out"}]})
    wf = write_wf(tmp_path / "wf.json", tasks)
    client = xylem.start("run", wf, "--manager", f"127.0.0.1:{port}",
                         "--secret-file", secret_file)
    wait_for(lambda: marks.exists() and
             len(marks.read_text().split()) >= 3, TIMEOUT,
             what="three tasks running")
    mgr.signal(signal.SIGKILL)
    mgr.wait(30)
    client.wait_line(r"lost the manager at .* submitting the \d+ tasks"
                     r" still out again", TIMEOUT)
    mgr = manager()
    assert client.wait(TIMEOUT) == 0, client.output + mgr.output
    for i in range(3):
        assert (tmp_path / f"out/t{i}").read_text() == f"{i}\n"
    assert (tmp_path / "out/sum").read_text() == "0\n1\n"
    assert sorted(marks.read_text().split()) == ["sum", "t0", "t1", "t2"], \
        (marks.read_text(), mgr.output, worker.output)
    # The three were running when the manager died: the worker kept them
    # and the manager took them back (not "ran them again").
    assert mgr.output.count("adopted from worker") == 3, mgr.output


def test_a_manager_that_does_not_come_back_is_given_up_on(xylem, tmp_path,
                                                         secret_file):
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    wf = write_wf(tmp_path / "wf.json", [
        {"id": "nap", "command": f"sleep {10 * SLOW}"}])
    env = dict(xylem.env, XYLEM_RECONNECT="1")
    client = xylem.start("run", wf, "--manager", f"127.0.0.1:{mgr.port}",
                         "--secret-file", secret_file, env=env)
    mgr.p.wait_line(r" runs as ", TIMEOUT)
    mgr.kill()
    assert client.wait(TIMEOUT) == 1, client.output
    assert "gave up waiting for it" in client.output, client.output


def test_a_wide_gather_and_a_long_broken_chain(xylem, tmp_path, secret_file):
    """A task with 3,000 inputs (it overflowed the stack once), and a
    chain of 5,000 whose head fails: every other task is reported not
    run, and an output from an earlier run stays where it was."""
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(3000):
        (parts / f"p{i}").write_text(f"{i}\n")
    gather = [{"id": "gather", "command": "cat p* | wc -l > out",
               "inputs": [{"path": str(parts / f"p{i}"), "as": f"p{i}"}
                          for i in range(3000)],
               "outputs": [{"path": str(tmp_path / "count"), "as": "out"}]}]
    r = run(xylem, mgr, write_wf(tmp_path / "gather.json", gather))
    assert r.returncode == 0, r.output
    assert (tmp_path / "count").read_text().strip() == "3000"
    (tmp_path / "c").mkdir()
    (tmp_path / "c/l0").write_text("kept\n")
    chain = [{"id": "l0", "command": "exit 1",
              "outputs": [{"path": str(tmp_path / "c/l0"), "as": "out"}]}]
    chain += [{"id": f"l{i}", "command": "cat in > out",
               "inputs": [{"path": str(tmp_path / f"c/l{i - 1}"),
                           "as": "in"}],
               "outputs": [{"path": str(tmp_path / f"c/l{i}"), "as": "out"}]}
              for i in range(1, 5000)]
    r = run(xylem, mgr, write_wf(tmp_path / "chain.json", chain))
    assert r.returncode == 1, r.output[-2000:]
    assert r.output.count("not run: its input from") == 4999
    assert "5000 tasks: 0 succeeded, 1 failed, some not run" in r.output
    assert (tmp_path / "c/l0").read_text() == "kept\n"
