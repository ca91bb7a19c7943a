"""The data plane at scale (issue 19; docs/dataplane.md): 128 worker hosts,
each in its own namespace behind its own capped link, all started at once,
every one needing the same object. Small object, fast links: the test is
about joining, planning and control traffic at N = 128, not bandwidth
(bench/broadcast.py measures that, at N up to 240)."""

import hashlib
import json
import os
import sqlite3
import time

import cluster
from cluster import Cluster

MIB = 1 << 20
N = 128


def wait_until(pred, timeout, step):
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            return False
        time.sleep(step)
    return True


def barrier_tasks(tmp, data, n, hold):
    """n one-core tasks, each reading the input, then waiting until all n
    have started (so every worker runs one and fetches the object), then
    holding their worker for `hold` seconds."""
    bar = tmp / "barrier"
    bar.mkdir()
    wait = (f"while set -- {bar}/*; [ $# -lt {n} ]; do sleep 0.2; done")
    tasks = [{"id": f"t{i}",
              "command": f"sha256sum in | cut -d' ' -f1 > out && touch"
                         f" {bar}/t{i} && {wait} && sleep {hold}",
              "inputs": [{"path": str(data), "as": "in"}],
              "outputs": [{"path": str(tmp / f"out{i}"), "as": "out"}],
              "resources": {"cores": 1}} for i in range(n)]
    path = tmp / "wf.json"
    path.write_text(json.dumps({"name": "scale", "tasks": tasks}))
    return path, bar


def test_broadcast_to_128_hosts_started_at_once(netns, xylem_bin, secret_file,
                                                tmp_path):
    """Every one of 128 workers started at once joins with no retry;
    each gets the object with no failed fetch, the manager sending it
    about once (the rest go worker to worker); and while the tasks hold
    their workers, the control traffic on the manager's link is a few
    bytes a second per worker (keepalives), not a chatter that grows
    with N."""
    data = tmp_path / "input.bin"
    data.write_bytes(os.urandom(4 * MIB))
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    hold = 12
    wf, bar = barrier_tasks(tmp_path, data, N, hold)
    db = tmp_path / "run.db"
    with Cluster(N, rate="100mbit") as c:
        before = c.counters(cluster.MANAGER)
        mgr, _ = c.start_manager(wf, secret_file, "--history", db,
                                 "--quiet", cwd=tmp_path)
        workers = [c.start_worker(i, secret_file, wait=False)
                   for i in range(N)]
        for w in workers:
            w.wait_line(r"connected to ", 60)
        # Every task past the barrier: every copy is done, and the tasks
        # hold their workers for `hold` s with nothing else to do.
        assert wait_until(
            lambda: len(list(bar.iterdir())) >= N, 240, 0.2), mgr.output
        time.sleep(1)
        quiet0, t0 = c.counters(cluster.MANAGER), time.monotonic()
        time.sleep(hold - 4)
        quiet1, t1 = c.counters(cluster.MANAGER), time.monotonic()
        rc = mgr.wait(120)
        after = c.counters(cluster.MANAGER)
        logs = "".join(w.output for w in workers)
        for w in workers:
            w.wait(30)
    assert rc == 0, mgr.output
    for i in range(N):
        assert (tmp_path / f"out{i}").read_text() == digest + "\n"
    for bad in ("handshake timed out", "cannot connect", "retrying"):
        assert bad not in logs, logs
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT source, dest, status FROM transfers"
                           " WHERE object = ? AND dest != 'manager'",
                           (digest,)).fetchall()
    ok = [r for r in rows if r[2] == "ok"]
    assert sorted({r[1] for r in ok}) == sorted(c.worker(i)
                                                for i in range(N)), rows
    assert len(ok) == N and len(rows) == N, \
        [r for r in rows if r[2] != "ok"]
    # The manager heads a chain each time it is idle while receivers
    # join; the copies go worker to worker, not from it.
    heads = sum(1 for r in ok if r[0] == "manager")
    print(f"{heads} chains from the manager")
    assert heads <= N // 16, ok
    sent = after["tx"] - before["tx"]
    assert sent < (heads + 1) * 4 * MIB, (sent, heads)
    per_worker = ((quiet1["tx"] - quiet0["tx"]) +
                  (quiet1["rx"] - quiet0["rx"])) / N / (t1 - t0)
    print(f"control traffic while tasks run: {per_worker:.1f} B/s a worker")
    assert per_worker < 64, per_worker
