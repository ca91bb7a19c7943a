"""Cached objects stay what their hash says (docs/security.md, "Cached
objects"): a task is given its inputs as the worker cache's own inodes,
read-only by their modes, which stop neither root (these tests run as
root, as CI does) nor a chmod by the files' owner. The worker checks each
object it lent against its fingerprint after the task: a task that wrote
to its input fails saying so, the object leaves the cache, and the next
task on the same worker reads the right bytes (fetched again). A task
that only reads, or only moves its input around in its sandbox, is not
affected.

One worker with one core, so the tasks run one after the other, in
priority order, on the same cache."""

import os
import re
import tarfile

import pytest

from helpers import write_workflow

GOOD = b"the right bytes\n" * 64


def run(xylem, tmp_path, tasks, *extra):
    wf = write_workflow(tmp_path / "wf.json", tasks)
    env = {**xylem.env, "XYLEM_LOG": "info"}
    return xylem.run("run", wf, "--workers", "1", "--cores-per-worker", "1",
                     *extra, env=env, timeout=90)


def reader(tmp_path, inp, as_, read, prio=0, tid="reader", **extra):
    """A task whose output is what the command read prints."""
    out = tmp_path / f"{tid}.out"
    return {"id": tid, "command": f"{{ {read}; }} > out", "priority": prio,
            "inputs": [{"path": str(inp), "as": as_, **extra}],
            "outputs": [{"path": str(out), "as": "out"}]}, out


def writer(inp, as_, command, prio=10, tid="writer", **extra):
    return {"id": tid, "command": command, "priority": prio,
            "inputs": [{"path": str(inp), "as": as_, **extra}]}


@pytest.mark.parametrize("command", [
    "echo EVIL > in",                           # root: the mode is no bar
    "chmod u+w in && printf EVIL | dd of=in conv=notrunc 2>/dev/null",
    "truncate -s 3 in",
    # Written, then its mtime put back: ctime still moves.
    "t=$(stat -c %y in); echo EVIL >> in; touch -d \"$t\" in",
])
def test_task_that_writes_its_file_input_fails(xylem, tmp_path, command):
    data = tmp_path / "data"
    data.write_bytes(GOOD)
    t_read, out = reader(tmp_path, data, "in", "cat in")
    r = run(xylem, tmp_path, [writer(data, "in", command), t_read])
    assert r.returncode == 1, r.output
    assert "the task modified its input 'in'" in r.output, r.output
    assert "dropped" in r.output
    assert out.read_bytes() == GOOD, r.output  # fetched again, intact
    assert data.read_bytes() == GOOD


@pytest.mark.parametrize("command", [
    "echo EVIL > d/sub/a.txt",
    "chmod -R u+w d && echo EVIL >> d/b.txt",
    "touch d/sub/new",            # a file added
    "rm -f d/b.txt",              # a file removed
])
def test_task_that_writes_inside_its_directory_input_fails(xylem, tmp_path,
                                                           command):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_text("alpha\n")
    (src / "b.txt").write_text("beta\n")
    t_read, out = reader(tmp_path, src, "d", "cat d/sub/a.txt d/b.txt; ls d/sub")
    r = run(xylem, tmp_path, [writer(src, "d", command), t_read])
    assert r.returncode == 1, r.output
    assert "the task modified its input 'd'" in r.output, r.output
    assert out.read_text() == "alpha\nbeta\na.txt\n", r.output
    assert (src / "b.txt").read_text() == "beta\n"


def test_task_that_writes_inside_an_expansion_fails(xylem, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("alpha\n")
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as t:
        t.add(src, arcname=".")
    t_read, out = reader(tmp_path, archive, "d", "cat d/a.txt", unpack=True)
    r = run(xylem, tmp_path, [
        writer(archive, "d", "echo EVIL > d/a.txt", unpack=True), t_read])
    assert r.returncode == 1, r.output
    assert "the task modified its input 'd'" in r.output, r.output
    assert "expansion changed" in r.output
    assert out.read_text() == "alpha\n", r.output


def test_readers_and_movers_are_not_affected(xylem, tmp_path):
    """Reading, renaming or linking an input inside the sandbox moves its
    ctime, not its bytes: a rehash tells, and nothing fails."""
    data = tmp_path / "data"
    data.write_bytes(GOOD)
    tasks = []
    outs = []
    for i, cmd in enumerate(["cat in > out",
                             "mv in moved && cat moved > out",
                             "ln in other && cat other > out",
                             "chmod u+w in && cat in > out",
                             "cat in > out"]):
        out = tmp_path / f"o{i}"
        outs.append(out)
        tasks.append({"id": f"t{i}", "command": cmd, "priority": 10 - i,
                      "inputs": [{"path": str(data), "as": "in"}],
                      "outputs": [{"path": str(out), "as": "out"}]})
    r = run(xylem, tmp_path, tasks)
    assert r.returncode == 0, r.output
    for out in outs:
        assert out.read_bytes() == GOOD
    assert "altered" not in r.output and "modified" not in r.output
    # The input was fetched once: no drop, no second fetch.
    assert len(re.findall(r"touched but not changed", r.output)) >= 1, \
        r.output


def test_forever_object_is_not_kept_altered(xylem, tmp_path, secret_file):
    """A FOREVER object outlives its worker in forever/ and is reported
    as held at the next start without being hashed again: an altered one
    must therefore leave the cache at once, not at the next start."""
    data = tmp_path / "data"
    data.write_bytes(GOOD)
    cache = tmp_path / "cache"
    wf1 = write_workflow(tmp_path / "wf1.json", [
        writer(data, "in", "echo EVIL > in", cache="forever")])
    mgr, port = xylem.manager(wf1, secret_file)
    w = xylem.worker(port, secret_file, 1, "--cache", cache)
    assert mgr.wait(60) == 1, mgr.output
    assert "the task modified its input 'in'" in mgr.output
    w.wait(30)
    assert not any(p.read_bytes() != GOOD
                   for p in (cache / "forever").iterdir()), \
        list((cache / "forever").iterdir())
    t_read, out = reader(tmp_path, data, "in", "cat in", cache="forever")
    mgr, port = xylem.manager(write_workflow(tmp_path / "wf2.json",
                                             [t_read]), secret_file)
    xylem.worker(port, secret_file, 1, "--cache", cache)
    assert mgr.wait(60) == 0, mgr.output
    assert out.read_bytes() == GOOD


def test_shared_input_written_is_settled_by_reruns(xylem, tmp_path):
    """Two tasks lent one object at once, one of them writing it: the
    worker cannot tell which wrote, so both fail WORKER_FAILED, to be run
    again (retries untouched), and the object is dropped. The writer,
    run again at once with a fresh copy while the reader's first run
    still holds the old one, is then alone with what it writes and fails
    for good saying so; the reader, run again after, reads the right
    bytes. Its first run read the written bytes, and its output was not
    kept."""
    data = tmp_path / "data"
    data.write_bytes(GOOD)
    out = tmp_path / "reader.out"
    # The writer writes only once the reader runs (a flag outside the
    # sandboxes): under load it could otherwise be done before the
    # reader starts, and be alone with the object at once.
    flag = tmp_path / "reader_started"
    tasks = [
        {"id": "writer", "command": f"while [ ! -e {flag} ]; do sleep"
         f" 0.05; done; echo EVIL > in; sleep 0.3",
         "inputs": [{"path": str(data), "as": "in"}]},
        {"id": "reader", "command": f"touch {flag}; sleep 1.5;"
         f" cat in > out",
         "inputs": [{"path": str(data), "as": "in"}],
         "outputs": [{"path": str(out), "as": "out"}]},
    ]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    env = {**xylem.env, "XYLEM_LOG": "info"}
    r = xylem.run("run", wf, "--workers", "1", "--cores-per-worker", "2",
                  env=env, timeout=120)
    assert r.returncode == 1, r.output
    assert r.output.count("a task altered it") >= 2, r.output
    assert re.search(r'failed: task "writer".*\n.*the task modified its '
                     r"input 'in'", r.output), r.output
    assert "1 succeeded, 1 failed" in r.output, r.output  # the reader
    assert out.read_bytes() == GOOD, r.output
