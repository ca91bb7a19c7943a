"""Eviction (docs/worker.md): a worker whose --disk budget cannot hold
every input evicts the least recently used ones, tells the manager, and
fetches them again when a later task needs them."""

import os
import sqlite3

from helpers import task, write_workflow

MB = 1 << 20


def test_eviction_refetches(xylem, tmp_path, secret_file):
    data = tmp_path / "data"
    data.mkdir()
    n = 5
    for i in range(n):
        (data / f"big{i}").write_bytes(os.urandom(MB))
    out = tmp_path / "out"
    # A chain: t{i} reads big{i} and what t{i-1} wrote, so the inputs come
    # one after the other; the last task reads big0 again, long evicted.
    tasks = []
    for i in range(n):
        inputs = [(data / f"big{i}", "big")]
        cmd = "wc -c < big > o"
        if i:
            inputs.append((out / f"o{i - 1}", "prev"))
            cmd = "cat prev > o && wc -c < big >> o"
        tasks.append(task(f"t{i}", cmd, inputs=inputs,
                          outputs=[(out / f"o{i}", "o")]))
    tasks.append(task("again", "cat prev > o && wc -c < big >> o",
                      inputs=[(data / "big0", "big"),
                              (out / f"o{n - 1}", "prev")],
                      outputs=[(out / "again", "o")]))
    wf = write_workflow(tmp_path / "wf.json", tasks)

    db = tmp_path / "run.db"
    mgr, port = xylem.manager(wf, secret_file, "--history", db)
    w = xylem.worker(port, secret_file, 1, "--disk", "2")
    assert mgr.wait(20) == 0, mgr.output[-3000:]
    assert f"{n + 1} succeeded, 0 failed" in mgr.output, mgr.output[-3000:]
    assert (out / "again").read_text().split() == [str(MB)] * (n + 1)
    w.wait_line(r"evicted", 10)
    # big0 came twice: once for t0, again after its eviction.
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        big = con.execute("SELECT count(*), count(DISTINCT object)"
                          " FROM transfers WHERE bytes >= ? AND"
                          " status = 'ok'", (MB,)).fetchone()
    finally:
        con.close()
    assert big == (n + 1, n), big
