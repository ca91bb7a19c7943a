"""A full disk (docs/worker.md, "A full disk"): workers whose cache is a
small tmpfs of their own, mounted in a mount namespace that goes with the
worker (`unshare -m`), and a manager whose output directory is one.

* An input larger than the only worker's disk: every fetch fails with
  "No space left on device", naming the worker; the partial file is
  removed; the manager learns the worker has no room for it; the task
  ends failed after a bounded number of tries while the worker stays
  usable.
* A worker that offers more disk than it has (`--disk 64` on 8 MiB)
  fails to store a 16 MiB temp from a peer: the peer is not blamed, the
  manager sends objects that large elsewhere for a while, and the task
  waits for the worker that holds the temp and runs there.
* A worker whose disk (as it says) cannot hold an input is never sent
  it while another can.
* ... unless the other could never run the task (too few cores): then
  the task is tried where it can run, and ends failed, bounded.
* A task whose output fills the disk fails with its own error; its
  sandbox and its partial output go, and the next task there succeeds.
* A URL whose download fills a worker's disk goes to a worker with room;
  with none, its task ends INPUT_MISSING after 3 tries, saying why.
* The manager's own disk fills while it brings an output back: that
  task fails (manager failed) with the reason, once, and the others
  succeed.

Needs root and util-linux (unshare, nsenter); skipped otherwise."""

import hashlib
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys

import pytest

from helpers import Proc, task, wait_for, write_workflow

MIB = 1 << 20


def _tmpfs_works(where):
    where.mkdir(exist_ok=True)
    try:
        r = subprocess.run(
            ["unshare", "-m", "sh", "-c",
             f"mount -t tmpfs -o size=1m tmpfs {shlex.quote(str(where))}"],
            capture_output=True, timeout=10)
    except OSError:
        return False
    return r.returncode == 0


@pytest.fixture(autouse=True)
def need_tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs in a mount namespace")
    for tool in ("unshare", "nsenter"):
        if not shutil.which(tool):
            pytest.skip(f"needs {tool} (util-linux)")
    if not _tmpfs_works(tmp_path / "probe"):
        pytest.skip("cannot mount a tmpfs in a new mount namespace here")


def small_worker(xylem, port, secret_file, cache, name, *extra,
                 size="8m", cores=1):
    """`xylem worker` with its cache on a tmpfs of `size`, mounted in a
    mount namespace of its own (gone with the worker)."""
    cache.mkdir()
    cmd = " ".join(map(shlex.quote, [
        xylem.bin, "worker", f"127.0.0.1:{port}", "--secret-file",
        secret_file, "--cores", str(cores), "--name", name, "--cache",
        str(cache), *map(str, extra)]))
    script = (f"mount -t tmpfs -o size={size} tmpfs "
              f"{shlex.quote(str(cache))} && exec {cmd}")
    p = Proc(["unshare", "-m", "sh", "-c", script], env=xylem.env)
    xylem.procs.append(p)
    return p


def in_worker(p, *cmd):
    """Runs cmd in the worker's mount namespace; returns its stdout."""
    r = subprocess.run(["nsenter", "-t", str(p.pid), "-m", "--", *cmd],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout


def files_over(p, cache, size_k):
    """Files bigger than size_k KiB anywhere in the worker's cache."""
    return in_worker(p, "find", str(cache), "-type", "f", "-size",
                     f"+{size_k}k").split()


def query(db, sql, *args):
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute(sql, args).fetchall()
    except sqlite3.Error:
        return []


def done(db, tag):
    """The detail of tag's "done" event, once there is one."""
    rows = query(db, "SELECT detail, worker FROM task_events WHERE tag = ?"
                 " AND event = 'done'", tag)
    return rows[0] if rows else None


def ready(db, worker):
    """True once the worker's "ready" event is in the history."""
    return query(db, "SELECT 1 FROM worker_events WHERE worker = ? AND"
                 " event = 'ready'", worker) != []


def gate(path):
    """A command that waits for path to exist (the test's go-ahead)."""
    q = shlex.quote(str(path))
    return f"while [ ! -e {q} ]; do sleep 0.05; done"


def test_input_larger_than_every_disk(xylem, tmp_path, secret_file):
    big = tmp_path / "big"
    big.write_bytes(os.urandom(16 * MIB))
    go = tmp_path / "go"
    tasks = [
        task("t", "wc -c < big > n", inputs=[(big, "big")],
             outputs=[(tmp_path / "n", "n")]),
        # Keeps the run (and the worker's namespace) up for a look.
        task("hold", f"{gate(go)}; echo ok > o",
             outputs=[(tmp_path / "o", "o")]),
    ]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    db = tmp_path / "run.db"
    mgr, port = xylem.manager(wf, secret_file, "--history", db)
    cache = tmp_path / "cache"
    w = small_worker(xylem, port, secret_file, cache, "small", cores=2)
    detail = wait_for(lambda: done(db, "t"), 30, what="t to fail")[0]
    # Bounded, and the reason names the worker and the cause.
    assert "failed on a worker" in detail, detail
    assert "on small:" in detail and "No space left on device" in detail, \
        detail
    # Nothing half-written is left in the worker's cache.
    assert files_over(w, cache, 64) == []
    assert in_worker(w, "ls", "-A", str(cache / "tmp")).split() == []
    go.touch()
    assert mgr.wait(30) == 1, mgr.output
    out = mgr.output
    assert 'task "t": worker failed' in out, out
    assert "1 succeeded, 1 failed" in out, out
    # The worker stayed: "hold" ran on it after t's failures.
    assert (tmp_path / "o").read_text() == "ok\n"
    fetches = query(db, "SELECT status FROM transfers WHERE dest = 'small'"
                    " AND status != 'ok'")
    assert 1 <= len(fetches) <= 11, fetches
    assert all("No space left on device" in s for (s,) in fetches), fetches
    assert "small has no room for 16777216 bytes" in out, out


def peer_workflow(tmp_path, go, blocking, extra=()):
    """make (on the big worker) writes a 16 MiB temp; block then holds
    that worker's only core until `go` exists; use reads the temp."""
    tmp = {"path": str(tmp_path / "t16"), "as": "big", "temp": True}
    tasks = [
        {"id": "make", "command": "head -c 16M /dev/urandom > big",
         "outputs": [tmp], "priority": 3},
        {"id": "block", "command": f"touch {shlex.quote(str(blocking))};"
         f" {gate(go)}", "priority": 2},
        {"id": "use", "command": "wc -c < big > n", "priority": 1,
         "inputs": [{"path": str(tmp_path / "t16"), "as": "big"}],
         "outputs": [{"path": str(tmp_path / "n"), "as": "n"}]},
        *extra,
    ]
    return write_workflow(tmp_path / "wf.json", tasks)


def test_worker_short_of_disk_blames_no_source(xylem, tmp_path, secret_file):
    go, blocking = tmp_path / "go", tmp_path / "blocking"
    wf = peer_workflow(tmp_path, go, blocking)
    db = tmp_path / "run.db"
    mgr, port = xylem.manager(wf, secret_file, "--history", db)
    xylem.worker(port, secret_file, 1, "--name", "big")
    wait_for(blocking.exists, 30, what="make to end and block to start")
    # It says 64 MB; it has 8 MiB.
    cache = tmp_path / "cache"
    w = small_worker(xylem, port, secret_file, cache, "small", "--disk", 64)
    mgr.wait_line(r"small has no room for 16777216 bytes", 30)
    assert files_over(w, cache, 64) == []
    assert in_worker(w, "ls", "-A", str(cache / "tmp")).split() == []
    go.touch()
    assert mgr.wait(30) == 0, mgr.output
    out = mgr.output
    assert (tmp_path / "n").read_text().strip() == str(16 * MIB)
    assert "3 succeeded, 0 failed" in out, out
    # The source (big) was not put to rest for small's disk.
    assert "rests for" not in out, out
    assert "No space left on device" in out, out
    failed = query(db, "SELECT source, status FROM transfers"
                   " WHERE dest = 'small' AND status != 'ok'")
    assert len(failed) == 1 and failed[0][0] == "big", failed
    # Tried once on small, then run where the temp is.
    assert done(db, "use")[1] == "big"
    ran = query(db, "SELECT worker FROM task_events WHERE tag = 'use'"
                " AND event = 'dispatched' ORDER BY time")
    assert ran == [("small",), ("big",)], ran
    # small stayed connected to the end.
    gone = query(db, "SELECT detail FROM worker_events WHERE"
                 " worker = 'small' AND event = 'disconnected'")
    assert all("closing" in d for (d,) in gone), gone


def test_input_not_sent_to_a_disk_too_small(xylem, tmp_path, secret_file):
    go, blocking = tmp_path / "go", tmp_path / "blocking"
    # "other" comes after "use" in the queue: once small has run it, the
    # scheduler has had small as a choice for "use" and passed it over.
    other = task("other", "echo ok > o", outputs=[(tmp_path / "o", "o")])
    wf = peer_workflow(tmp_path, go, blocking, [other])
    db = tmp_path / "run.db"
    mgr, port = xylem.manager(wf, secret_file, "--history", db)
    xylem.worker(port, secret_file, 1, "--name", "big")
    wait_for(blocking.exists, 30, what="make to end and block to start")
    small_worker(xylem, port, secret_file, tmp_path / "cache", "small")
    assert wait_for(lambda: done(db, "other"), 30)[1] == "small"
    go.touch()
    assert mgr.wait(30) == 0, mgr.output
    assert "4 succeeded, 0 failed" in mgr.output, mgr.output
    assert query(db, "SELECT * FROM transfers WHERE dest = 'small'") == []
    assert done(db, "use")[1] == "big"


def test_output_fills_the_disk(xylem, tmp_path, secret_file):
    go = tmp_path / "go"
    tasks = [
        task("fill", "head -c 20M /dev/zero > out",
             outputs=[(tmp_path / "out", "out")], priority=2),
        # Needs most of the disk: only there if fill's leftovers went.
        task("next", f"{gate(go)}; head -c 6M /dev/zero > scratch &&"
             " rm scratch && echo ok > o",
             outputs=[(tmp_path / "o", "o")], priority=1),
    ]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    db = tmp_path / "run.db"
    mgr, port = xylem.manager(wf, secret_file, "--history", db)
    cache = tmp_path / "cache"
    w = small_worker(xylem, port, secret_file, cache, "small")
    wait_for(lambda: done(db, "fill"), 30, what="fill to fail")
    # Its sandbox and its partial output are gone (the sandbox on the
    # worker's thread pool, hence the wait).
    wait_for(lambda: files_over(w, cache, 64) == [], 10,
             what="fill's sandbox to go")
    assert in_worker(w, "ls", "-A", str(cache / "objects")).split() == []
    go.touch()
    assert mgr.wait(30) == 1, mgr.output
    out = mgr.output
    assert 'task "fill": application failed, exit code 1' in out, out
    assert "No space left on device" in out, out
    assert "1 succeeded, 1 failed" in out, out
    assert (tmp_path / "o").read_text() == "ok\n"
    assert not (tmp_path / "out").exists()
    assert done(db, "next")[1] == "small"


def test_manager_disk_full(xylem, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    tasks = [
        task("big", "head -c 20M /dev/zero > o", outputs=[(out / "o", "o")]),
        task("small", "echo hi > o", outputs=[(out / "s", "o")]),
    ]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    db = tmp_path / "run.db"
    q = shlex.quote
    # The whole run sees a full 8 MiB disk at out/; afterwards, still in
    # its namespace, what it left there is listed.
    script = (f"mount -t tmpfs -o size=8m tmpfs {q(str(out))} &&"
              f" {q(xylem.bin)} run {q(wf)} --workers 1 --history {q(str(db))};"
              f" rc=$?; echo listing:; ls -A {q(str(out))}; exit $rc")
    p = Proc(["unshare", "-m", "sh", "-c", script], env=xylem.env)
    xylem.procs.append(p)
    assert p.wait(60) == 1, p.output
    text = p.output
    assert 'task "big": manager failed' in text, text
    assert "could not be brought back" in text, text
    assert "No space left on device" in text, text
    assert "1 succeeded, 1 failed" in text, text
    # s came back; nothing half-written stays beside it.
    assert text.split("listing:")[1].split() == ["s"], text
    # Once: running it again would not give the manager room.
    runs = query(db, "SELECT count(*) FROM task_events WHERE tag = 'big'"
                 " AND event = 'dispatched'")
    assert runs == [(1,)], runs


# An HTTP origin that holds every GET until the file `go` exists, so that
# the test decides when the download starts filling a disk. Prints its
# port.
HELD_ORIGIN = """
import http.server, os, sys, time
root, go = sys.argv[1], sys.argv[2]
class H(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        while not os.path.exists(go):
            time.sleep(0.05)
        super().do_GET()
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(
    ("127.0.0.1", 0), lambda *a: H(*a, directory=root))
print("port", s.server_address[1], flush=True)
s.serve_forever()
"""


def held_origin(xylem, tmp_path, size):
    """Serves tmp_path/www/big (size random bytes) once tmp_path/go
    exists; returns (url, go, content)."""
    www, go = tmp_path / "www", tmp_path / "go"
    www.mkdir()
    data = os.urandom(size)
    (www / "big").write_bytes(data)
    p = Proc([sys.executable, "-u", "-c", HELD_ORIGIN, str(www), str(go)])
    xylem.procs.append(p)
    port = p.wait_line(r"port (\d+)", 10).group(1)
    return f"http://127.0.0.1:{port}/big", go, data


def test_url_goes_to_a_worker_with_room(xylem, tmp_path, secret_file):
    url, go, data = held_origin(xylem, tmp_path, 16 * MIB)
    wf = write_workflow(tmp_path / "wf.json", [
        {"id": "u", "command": "sha256sum < big > sum",
         "inputs": [{"url": url, "as": "big"}],
         "outputs": [{"path": str(tmp_path / "sum"), "as": "sum"}]}])
    db = tmp_path / "run.db"
    mgr, port = xylem.manager(wf, secret_file, "--history", db)
    small_worker(xylem, port, secret_file, tmp_path / "cache", "small")
    # The only worker: the URL is sent to it and its GET held.
    wait_for(lambda: ready(db, "small"), 30, what="small to be ready")
    xylem.worker(port, secret_file, 1, "--name", "big")
    wait_for(lambda: ready(db, "big"), 30, what="big to be ready")
    go.touch()
    assert mgr.wait(60) == 0, mgr.output
    out = mgr.output
    assert re.search(r"small had no room for http\S+ \(cannot write .*No"
                     r" space left on device\): another worker will", out), out
    assert "small has no room for" in out, out
    want = hashlib.sha256(data).hexdigest()
    assert (tmp_path / "sum").read_text().split()[0] == want
    assert done(db, "u")[1] == "big"
    fetched = query(db, "SELECT dest, status FROM transfers WHERE"
                    " source = ? ORDER BY time", url)
    assert [d for d, _ in fetched] == ["small", "big"], fetched
    assert "No space left on device" in fetched[0][1]
    assert fetched[1][1] == "ok"


def test_url_with_no_room_anywhere(xylem, tmp_path, secret_file):
    url, go, _ = held_origin(xylem, tmp_path, 16 * MIB)
    go.touch()
    hold = tmp_path / "hold"
    wf = write_workflow(tmp_path / "wf.json", [
        {"id": "u", "command": "wc -c < big > n",
         "inputs": [{"url": url, "as": "big"}],
         "outputs": [{"path": str(tmp_path / "n"), "as": "n"}]},
        # Keeps the run (and the worker's namespace) up for a look.
        task("hold", f"{gate(hold)}; echo ok > o",
             outputs=[(tmp_path / "o", "o")])])
    db = tmp_path / "run.db"
    mgr, port = xylem.manager(wf, secret_file, "--history", db)
    w = small_worker(xylem, port, secret_file, tmp_path / "cache", "small")
    detail = wait_for(lambda: done(db, "u"), 30, what="u to fail")[0]
    assert "No space left on device (no room, 3 tries)" in detail, detail
    # Nothing half-written stays behind.
    assert files_over(w, tmp_path / "cache", 64) == []
    hold.touch()
    assert mgr.wait(60) == 1, mgr.output
    out = mgr.output
    assert 'task "u": input missing' in out, out
    assert out.count("small had no room for http") == 2, out
    assert "1 succeeded, 1 failed" in out, out


def test_room_only_where_the_task_cannot_run(xylem, tmp_path, secret_file):
    """A worker with room that could never run the task (too few cores)
    does not hold it back: the task is tried on the one that can run it
    and ends failed, bounded, rather than waiting for ever."""
    big = tmp_path / "big"
    big.write_bytes(os.urandom(16 * MIB))
    wf = write_workflow(tmp_path / "wf.json", [
        task("t", "wc -c < big > n", inputs=[(big, "big")],
             outputs=[(tmp_path / "n", "n")],
             resources={"cores": 2})])
    db = tmp_path / "run.db"
    mgr, port = xylem.manager(wf, secret_file, "--history", db)
    xylem.worker(port, secret_file, 1, "--name", "roomy")
    wait_for(lambda: ready(db, "roomy"), 30, what="roomy to be ready")
    small_worker(xylem, port, secret_file, tmp_path / "cache", "small",
                 cores=2)
    assert mgr.wait(60) == 1, mgr.output
    out = mgr.output
    assert 'task "t": worker failed' in out, out
    assert "failed on a worker 11 times; last: on small:" in out, out
