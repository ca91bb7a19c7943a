"""Cache eviction across namespaces (docs/worker.md, docs/dataplane.md): a
worker whose --disk budget cannot hold every input evicts the least
recently used ones and tells the manager, which drops that copy from its
records; a later task on that worker gets the input again, from a source
that really holds it."""

import json
import os
import sqlite3
import time

import pytest

from cluster import Cluster

MIB = 1 << 20


def transfers(db):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute("SELECT object, source, dest, status FROM"
                           " transfers WHERE bytes >= ?", (MIB,)).fetchall()


def done(db, tag):
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute("SELECT count(*) FROM task_events WHERE"
                               " tag = ? AND event = 'done'",
                               (tag,)).fetchone()[0] > 0
    except sqlite3.Error:
        return False


@pytest.mark.slow
def test_eviction_under_a_small_budget(netns, xylem_bin, secret_file,
                                       tmp_path):
    """w1 reads big0 first and keeps it. Then a chain of 2-core tasks,
    which only w0 (2 cores, a 2 MB disk budget) can run, reads big0..big4
    and big0 again: w0 evicts big0 on the way and fetches it again, and
    every input comes from the manager or w1, never from w0's evicted
    copy."""
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    n = 5
    for i in range(n):
        (data / f"big{i}").write_bytes(os.urandom(MIB))
    tasks = [{"id": "seed", "command": "wc -c < big > o",
              "inputs": [{"path": str(data / "big0"), "as": "big"}],
              "outputs": [{"path": str(out / "seed"), "as": "o"}]}]
    for i in range(n + 1):
        big = data / f"big{i % n}"
        inputs = [{"path": str(big), "as": "big"}]
        cmd = "wc -c < big > o"
        if i:
            inputs.append({"path": str(out / f"o{i - 1}"), "as": "prev"})
            cmd = "cat prev > o && wc -c < big >> o"
        tasks.append({"id": f"t{i}", "command": cmd, "inputs": inputs,
                      "outputs": [{"path": str(out / f"o{i}"), "as": "o"}],
                      "resources": {"cores": 2}})
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps({"name": "eviction", "tasks": tasks}))
    db = tmp_path / "run.db"
    with Cluster(2, rate="100mbit") as c:
        mgr, _ = c.start_manager(wf, secret_file, "--history", db,
                                 cwd=tmp_path)
        w1 = c.start_worker(1, secret_file, cores=1)
        end = time.monotonic() + 60
        while not done(db, "seed") and time.monotonic() < end:
            time.sleep(0.2)
        w0 = c.start_worker(0, secret_file, "--disk", "2", cores=2)
        rc = mgr.wait(120)
        w0.wait_line(r"evicted", 10)
        logs = mgr.output + w0.output + w1.output
    assert rc == 0, logs
    assert (out / f"o{n}").read_text().split() == [str(MIB)] * (n + 1)
    rows = transfers(db)
    to_w0 = [r for r in rows if r[2] == c.worker(0) and r[3] == "ok"]
    # big0..big4 once each, and big0 again after its eviction.
    assert len(to_w0) == n + 1, rows
    assert len({r[0] for r in to_w0}) == n, rows
    assert all(r[1] in ("manager", c.worker(1)) for r in to_w0), rows
